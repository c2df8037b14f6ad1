-- accredited_by_state: per location.state (NULL is its own group), over current facilities with
-- at least one accreditation valid on :as_of (valid_until >= as_of): distinct facilities, their
-- employees counted once each (NULL as 0), and the number of such accreditations.
-- Ordered by facility_count desc, then state in byte order with NULL last.
-- Parameters: :as_of (YYYY-MM-DD), :load (NULL = dataset scope, else the source's load_id).
--
-- Dataset scope reads the per-state summaries the warehouse keeps up to date on every load:
-- a facility has a valid accreditation exactly when its latest valid_until >= as_of, so
--   facility_count, total_employees = sums over state_valid rows with max_until >= as_of,
--   valid_accreditations            = sum over state_acc rows with valid_until >= as_of.
-- Object scope scans the object's current facilities and their accreditations.
WITH p AS (
    SELECT CAST(julianday(:as_of) - 2440587.5 AS INTEGER) AS d0
),
dataset AS (
    SELECT CASE WHEN v.null_state THEN NULL ELSE v.state END AS state,
           sum(v.n) AS facility_count,
           sum(v.emp) AS total_employees,
           (SELECT sum(s.n) FROM state_acc AS s
            WHERE s.null_state = v.null_state AND s.state = v.state AND s.valid_until >= p.d0)
               AS valid_accreditations
    FROM state_valid AS v, p
    WHERE :load IS NULL AND v.max_until >= p.d0
    GROUP BY v.null_state, v.state
),
valid AS (
    SELECT a.fac AS fac, count(*) AS n
    FROM facilities AS f, p
    JOIN accreditations AS a ON a.fac = f.id
    WHERE :load IS NOT NULL AND f.load_id = :load AND f.cur = 1 AND a.valid_until >= p.d0
    GROUP BY a.fac
),
object AS (
    SELECT f.state AS state,
           count(*) AS facility_count,
           sum(coalesce(f.employee_count, 0)) AS total_employees,
           sum(v.n) AS valid_accreditations
    FROM valid AS v
    JOIN facilities AS f ON f.id = v.fac
    GROUP BY f.state
)
SELECT state, facility_count, total_employees, valid_accreditations
FROM (SELECT * FROM dataset UNION ALL SELECT * FROM object)
ORDER BY facility_count DESC, state IS NULL, state;
