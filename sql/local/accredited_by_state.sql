-- accredited_by_state: per location.state (NULL is its own group), over current facilities with
-- at least one accreditation valid on :as_of (valid_until >= as_of): distinct facilities, their
-- employees counted once each (NULL as 0), and the number of such accreditations.
-- Ordered by facility_count desc, then state in byte order with NULL last.
-- Parameters: :as_of (YYYY-MM-DD), :load (NULL = dataset scope, else the source's load_id).
WITH p AS (
    SELECT CAST(julianday(:as_of) - 2440587.5 AS INTEGER) AS d0
),
valid AS (
    SELECT a.fac AS fac, count(*) AS n
    FROM accreditations AS a, p
    WHERE a.valid_until >= p.d0
    GROUP BY a.fac
)
SELECT f.state AS state,
       count(*) AS facility_count,
       sum(coalesce(f.employee_count, 0)) AS total_employees,
       sum(v.n) AS valid_accreditations
FROM valid AS v
JOIN facilities AS f ON f.id = v.fac
WHERE f.cur = 1 AND (:load IS NULL OR f.load_id = :load)
GROUP BY f.state
ORDER BY facility_count DESC, f.state IS NULL, f.state;
