-- Daily reports as they were built: yesterday's report reads the same tomorrow, whatever data
-- arrived late (a rebuilt report shows those corrections beside the stored one).
CREATE TABLE daily_reports (
    day         date        PRIMARY KEY,   -- the hydrological day, by the date of its opening 08:00
    built_at    timestamptz NOT NULL DEFAULT now(),
    report      jsonb       NOT NULL
);
