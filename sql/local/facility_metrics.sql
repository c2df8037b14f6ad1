-- facility_metrics: one row per current facility, ordered by facility_id (byte order).
-- Parameters: :as_of (YYYY-MM-DD, unused here), :load (NULL = dataset scope, else the load_id
-- of the job's source object: only facilities whose current record came from it).
-- Dates are integer days since 1970-01-01; the engine renders them as YYYY-MM-DD.
-- The facilities table is scanned in storage order and sorted (`+` keeps SQLite from walking
-- `current` in key order instead: that visits facilities in random order, one page read per
-- row once the table outgrows the cache, several times slower on 1M facilities).
SELECT f.facility_id AS facility_id,
       f.name AS facility_name,
       f.employee_count AS employee_count,
       f.n_services AS number_of_offered_services,
       f.first_valid_until AS expiry_date_of_first_accreditation
FROM facilities AS f
WHERE f.cur = 1 AND (:load IS NULL OR f.load_id = :load)
ORDER BY +f.facility_id;
