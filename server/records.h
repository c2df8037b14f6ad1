/*
 * records: the streaming parser and validator of facility records.
 *
 * Input is pushed in chunks of any size (records_feed()), so an object of any size is parsed with
 * flat memory: at most one record's bytes are held at a time (capped by max_record_bytes).
 * The format is detected from the first bytes:
 *   - NDJSON: one record per line (blank lines are skipped); a record's position is its 1-based
 *     line number; a line that is not valid JSON is a bad record and parsing goes on.
 *   - a JSON array of records; position = 1-based element index.
 *   - an object whose single member is such an array (`{"sample_data": [...]}`); positions as for
 *     the array. An input starting with '{' is this form when its first member's value is an array
 *     and its key is not a record field ("services", "labs", "accreditations").
 * An array or wrapped object that is not valid JSON as a whole fails with HC_EBADINPUT.
 *
 * Validation rules (a record that breaks one is "bad", reported through the bad callback):
 * an object; facility_id a non-empty string; facility_name string or null; employee_count a
 * non-negative integer literal or null; location an object or null with string-or-null fields;
 * services an array of strings or null; labs an array of {lab_name, certifications[]} or null;
 * accreditations an array of {accreditation_body, accreditation_id, valid_until} or null, where
 * valid_until is a real calendar date YYYY-MM-DD or null. Unknown fields are ignored at any depth.
 * A repeated facility_id within one object is NOT detected here (the warehouse does it).
 *
 * Details decided here:
 *   - a UTF-8 BOM at the very start is skipped; empty or whitespace-only input is zero records
 *     and no error (the format stays UNKNOWN);
 *   - a key repeated inside a record, its location, a lab or an accreditation is a bad record
 *     (`duplicate key "city"`); repeated unknown keys are ignored;
 *   - raw bytes that are not UTF-8 in any string (keys and unknown fields too) make the record
 *     bad; a kept string holding \u0000 or an unpaired surrogate escape makes it bad;
 *   - nesting deeper than 512 levels (the record itself is level 1) is a bad NDJSON line and an
 *     unreadable array input; a line longer than max_record_bytes is a bad NDJSON line;
 *   - a record breaking a rule AND the JSON grammar is reported for the grammar;
 *   - employee_count `-0` is zero; beyond INT64_MAX it is a bad record;
 *   - detection compares the first key raw: a key written with escapes is not a record field;
 *   - reasons are one line, "path: what", with 0-based indices in the path:
 *     `accreditations[1].valid_until: "2026-02-30" is not a valid date`.
 */
#ifndef HCPIPE_RECORDS_H
#define HCPIPE_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#define RECORDS_NULL_DATE INT32_MIN /* valid_until was null or missing */

struct record_lab {
    const char *name; /* lab_name, NULL when null or missing */
    size_t n_certifications;
    const char *const *certifications; /* n_certifications strings */
};

struct record_accreditation {
    const char *body;    /* accreditation_body, NULL when null or missing */
    const char *id;      /* accreditation_id, NULL when null or missing */
    int32_t valid_until; /* days since 1970-01-01, or RECORDS_NULL_DATE */
};

/* One valid record. Every pointer is borrowed and valid only during the callback. Strings are
 * NUL-terminated UTF-8 (a string holding \u0000 makes the record bad). */
struct facility_record {
    uint64_t position;         /* 1-based line (NDJSON) or element index (array forms) */
    const char *facility_id;   /* never NULL, never empty */
    const char *facility_name; /* NULL when null or missing */
    int64_t employee_count;    /* valid when has_employee_count */
    int has_employee_count;    /* 0 when null or missing */
    const char *address, *city, *state, *zip; /* location fields, NULL when null or missing */
    size_t n_services;                        /* 0 when services is missing, null or empty */
    const char *const *services;
    size_t n_labs;
    const struct record_lab *labs;
    size_t n_accreditations;
    const struct record_accreditation *accreditations; /* in input order */
};

enum records_format {
    RECORDS_FORMAT_UNKNOWN,
    RECORDS_FORMAT_NDJSON,
    RECORDS_FORMAT_ARRAY,
    RECORDS_FORMAT_WRAPPED
};

struct records_callbacks {
    /* A valid record. Return 0 to go on, or an hc_err to stop parsing with that error. */
    int (*record)(void *ctx, const struct facility_record *rec);
    /* A bad record at `position`, with a one-line reason (borrowed). Same return convention. */
    int (*bad)(void *ctx, uint64_t position, const char *reason);
    void *ctx;
};

struct records_parser;

/* A new parser calling `cb` (copied). A single record longer than max_record_bytes is a bad
 * record (NDJSON) or fails the input (array forms). Returns NULL on ENOMEM. */
struct records_parser *records_new(const struct records_callbacks *cb, size_t max_record_bytes);

/* Parses the next chunk. Returns HC_OK, HC_EBADINPUT (the input cannot be read: see
 * records_error()), HC_ENOMEM, or the first non-zero value a callback returned. After an error,
 * later calls return the same error; a feed after records_finish() returns HC_EINVAL. */
int records_feed(struct records_parser *p, const void *data, size_t len);

/* Ends the input (a last NDJSON line without newline is a record). Same returns as feed. */
int records_finish(struct records_parser *p);

/* What made the input unreadable, with its position (borrowed; "" when none). */
const char *records_error(const struct records_parser *p);

/* The detected format (UNKNOWN until enough bytes were seen). */
enum records_format records_format(const struct records_parser *p);

/* Bytes consumed and records seen (valid + bad) so far. */
uint64_t records_bytes(const struct records_parser *p);
uint64_t records_seen(const struct records_parser *p);

void records_free(struct records_parser *p);

/* Converts YYYY-MM-DD (exactly 10 bytes, a real proleptic Gregorian date, years 0000-9999) to
 * days since 1970-01-01.
 * Returns 0 on success, -1 when not a valid date. */
int records_parse_date(const char *s, size_t len, int32_t *days_out);

/* Writes days since 1970-01-01 as YYYY-MM-DD into out (11 bytes). Days outside 0000-01-01 ..
 * 9999-12-31 are clamped to those dates. */
void records_format_date(int32_t days, char out[11]);

#endif
