"""The daily report of the hydrological day (08:00 to 08:00): built, stored, formatted, sent."""
