"""The store: schema, the reading writer and operator queries; nothing above it sees a row."""
