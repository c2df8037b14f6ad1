-- expiring_accreditations: one row per accreditation of a current facility with
-- as_of <= valid_until <= as_of + 6 calendar months, the end clamped to the last day of its
-- month (2026-08-31 + 6 months = 2027-02-28). days_left = valid_until - as_of in days.
-- Ordered by valid_until, facility_id, accreditation_body (byte order, NULL last).
-- Parameters: :as_of (YYYY-MM-DD), :load (NULL = dataset scope, else the source's load_id).
WITH p AS (
    SELECT CAST(julianday(:as_of) - 2440587.5 AS INTEGER) AS d0,
           CAST(julianday(min(date(:as_of, '+6 months'),
                              date(:as_of, 'start of month', '+7 months', '-1 day')))
                - 2440587.5 AS INTEGER) AS d1
)
SELECT f.facility_id AS facility_id,
       f.name AS facility_name,
       f.state AS state,
       a.body AS accreditation_body,
       a.valid_until AS valid_until,
       a.valid_until - p.d0 AS days_left
FROM p, accreditations AS a
JOIN facilities AS f ON f.id = a.fac
WHERE a.valid_until BETWEEN p.d0 AND p.d1
  AND f.cur = 1 AND (:load IS NULL OR f.load_id = :load)
ORDER BY a.valid_until, f.facility_id, a.body IS NULL, a.body;
