-- An operator's note on a confirmation (电话已联系) in a column of its own: recorded_by names
-- who recorded it and nothing else, so an operator's records can be found by name. Earlier
-- rows kept the note in recorded_by as "name(note)"; they are split the same way.
ALTER TABLE confirmations ADD COLUMN note text;
UPDATE confirmations
SET recorded_by = substring(recorded_by FROM '^([^(]+)\('),
    note = substring(recorded_by FROM '^[^(]+\((.*)\)$')
WHERE answer = 'operator' AND recorded_by ~ '^[^(]+\(.*\)$';
