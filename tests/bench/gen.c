/*
 * gen: a deterministic generator of realistic facility NDJSON for the benchmark (`make bench`).
 *
 * Usage: gen COUNT [SEED] > file.ndjson
 *
 * Writes COUNT records, one JSON object a line, in the shape of DESIGN.md "The data" and
 * tests/data/sample_data.ndjson. The output depends only on COUNT and SEED (default 1): one
 * splitmix64 stream drives every choice, so the same arguments always give the same bytes.
 *
 * Every record is valid for hcpipe's parser (no bad records) and facility ids are unique:
 * "FAC" + 8 digits, a bijection of the record index modulo 10^8 so ids are not in file order.
 * Distributions: states weighted by population (all 50 + DC), employee counts from a mixture
 * of clinics and hospitals, 0-12 distinct services, 0-4 labs with 0-3 distinct certifications,
 * 0-4 accreditations dated 2023-01-01..2030-12-31 from real accrediting bodies, about 4% of
 * names with non-ASCII text (accents, umlauts, n-tilde, CJK, Hangul), and about 1% of each
 * optional field missing or null (also inside location and accreditations). Names never
 * contain commas, double quotes or newlines, so CSV renderings can be compared textually.
 *
 * Organisation: PRNG, the word lists, a small output buffer with JSON helpers, one function
 * per record part, main.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- PRNG ---------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). n > 0; the bias of the modulo is negligible for our small n. */
static uint32_t rng_below(uint32_t n)
{
    return (uint32_t)((rng_next() >> 32) % n);
}

/* 1 with probability per_mille / 1000. */
static int rng_chance(uint32_t per_mille)
{
    return rng_below(1000) < per_mille;
}

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- word lists ---------------------------------------------------------------------------- */

struct weighted {
    const char *code;
    unsigned weight; /* 2020 population in 100,000s */
};

static const struct weighted states[] = {
    {"CA", 395}, {"TX", 291}, {"FL", 215}, {"NY", 202}, {"PA", 130}, {"IL", 128}, {"OH", 118},
    {"GA", 107}, {"NC", 104}, {"MI", 101}, {"NJ", 93},  {"VA", 86},  {"WA", 77},  {"AZ", 72},
    {"MA", 70},  {"TN", 69},  {"IN", 68},  {"MD", 62},  {"MO", 62},  {"WI", 59},  {"CO", 58},
    {"MN", 57},  {"SC", 51},  {"AL", 50},  {"LA", 47},  {"KY", 45},  {"OR", 42},  {"OK", 40},
    {"CT", 36},  {"UT", 33},  {"IA", 32},  {"NV", 31},  {"AR", 30},  {"MS", 30},  {"KS", 29},
    {"NM", 21},  {"NE", 20},  {"ID", 18},  {"WV", 18},  {"HI", 15},  {"NH", 14},  {"ME", 14},
    {"RI", 11},  {"MT", 11},  {"DE", 10},  {"SD", 9},   {"ND", 8},   {"AK", 7},   {"DC", 7},
    {"VT", 6},   {"WY", 6},
};
static unsigned states_total;

static const char *const cities[] = {
    "Springfield",  "Franklin",     "Greenville", "Bristol",       "Clinton",    "Fairview",
    "Salem",        "Madison",      "Georgetown", "Arlington",     "Ashland",    "Burlington",
    "Manchester",   "Oxford",       "Jackson",    "Milton",        "Riverside",  "Lakeside",
    "Centerville",  "Mount Vernon", "Dayton",     "Lexington",     "Auburn",     "Hudson",
    "Kingston",     "Dover",        "Newport",    "Marion",        "Winchester", "Cleveland",
    "Columbia",     "Monroe",       "Lebanon",    "Chester",       "Plymouth",   "Portland",
    "Bloomington",  "Greenwood",    "Hamilton",   "Troy",          "Metropolis", "Green Valley",
    "Española",     "Cañon City",   "San José",   "Coeur d'Alene", "La Cañada",  "Bellevue",
    "Cedar Rapids", "Sioux Falls",  "Boise",      "Santa Fe",      "Anchorage",  "Honolulu",
};

static const char *const streets[] = {
    "Main",   "Oak",        "Elm",     "Maple",     "Pine",    "Cedar",    "Lake",    "Hill",
    "Park",   "Washington", "Lincoln", "Jefferson", "River",   "Church",   "Market",  "Highland",
    "Sunset", "Walnut",     "Spring",  "Chestnut",  "Willow",  "Meadow",   "Forest",  "Ridge",
    "Center", "Mill",       "Broad",   "Union",     "College", "Franklin", "Jackson", "Madison",
};
static const char *const street_kinds[] = {"St", "Ave", "Rd",   "Blvd", "Dr",
                                           "Ln", "Way", "Pkwy", "Ct",   "Hwy"};

static const char *const name_ascii[] = {
    "City",          "Green Valley", "Lakeside",     "Mercy",        "Providence",
    "Sacred Heart",  "St. Mary's",   "St. Joseph's", "St. Luke's",   "Good Samaritan",
    "Riverside",     "Baptist",      "Methodist",    "Presbyterian", "Memorial",
    "University",    "Valley",       "Northside",    "Southwest",    "Eastern",
    "Mountain View", "Cedar Creek",  "Pine Ridge",   "Harbor",       "Bayview",
    "Summit",        "Pioneer",      "Heritage",     "Hope",         "Unity",
    "Community",     "County",       "Regional",     "Sunrise",      "Golden Plains",
    "Blue Ridge",    "Prairie",      "Twin Rivers",  "Fairview",     "Highland",
    "Crossroads",    "Lincoln",      "Washington",   "Jefferson",    "Franklin",
    "Kaiser",        "Adventist",    "Holy Cross",
};
static const char *const name_unicode[] = {
    "San José",      "Nuestra Señora",  "Peña Blanca",   "Müller", "Zoë Brontë",
    "Beaumont-Léon", "Sainte-Thérèse",  "Ångström",      "Gödel",  "Cañada",
    "東京",          "北京 Family",     "上海 Wellness", "서울",   "Jalapeño Valley",
    "São Paulo",     "Kraków Heritage", "Örebro",        "Dvořák", "Ñandú",
};
static const char *const name_kinds[] = {
    "Hospital",
    "Medical Center",
    "Clinic",
    "Regional Medical Center",
    "Community Hospital",
    "Health Center",
    "Children's Hospital",
    "Urgent Care",
    "Surgical Center",
    "Rehabilitation Center",
    "Family Practice",
    "Health System",
    "Specialty Hospital",
    "Behavioral Health Center",
    "Cancer Center",
    "Heart Institute",
};

static const char *const services[] = {
    "Emergency Care",       "Maternity",        "Surgery",           "Radiology",
    "Laboratory",           "Primary Care",     "Pediatrics",        "Orthopedics",
    "Cardiology",           "Oncology",         "Neurology",         "Psychiatry",
    "Dermatology",          "Gastroenterology", "Urology",           "Nephrology",
    "Pulmonology",          "Endocrinology",    "Ophthalmology",     "Physical Therapy",
    "Occupational Therapy", "Dialysis",         "Hospice",           "Home Health",
    "Telehealth",           "Urgent Care",      "Behavioral Health", "Infectious Disease",
    "Rheumatology",         "Geriatrics",       "Sports Medicine",   "Wound Care",
    "Sleep Medicine",       "Pharmacy",         "Intensive Care",    "Obstetrics and Gynecology",
};

static const char *const lab_names[] = {
    "Hematology Lab", "Microbiology Lab", "Clinical Chemistry Lab",
    "Pathology Lab",  "Immunology Lab",   "Molecular Diagnostics Lab",
    "Toxicology Lab", "Blood Bank",       "Cytology Lab",
    "Genetics Lab",   "Virology Lab",     "Point-of-Care Lab",
};
static const char *const certifications[] = {"CLIA",      "CAP", "COLA",  "AABB",
                                             "ISO 15189", "JCI", "NYSDOH"};

struct body {
    const char *name;
    const char *id_prefix;
};
static const struct body bodies[] = {
    {"Joint Commission", "JC"}, {"DNV", "DNV"},   {"CAP", "CAP"},   {"NCQA", "NCQA"},
    {"AAAHC", "AAAHC"},         {"HFAP", "HFAP"}, {"CARF", "CARF"}, {"CHAP", "CHAP"},
    {"URAC", "URAC"},           {"ACHC", "ACHC"}, {"CIHQ", "CIHQ"}, {"AABB", "AABB"},
};

/* ---- output -------------------------------------------------------------------------------- */

static char out_buf[1 << 20];
static size_t out_len;
static int out_failed;

static void out_flush(void)
{
    if (out_len > 0 && fwrite(out_buf, 1, out_len, stdout) != out_len)
        out_failed = 1;
    out_len = 0;
}

static void out_bytes(const char *s, size_t n)
{
    if (out_len + n > sizeof(out_buf))
        out_flush();
    memcpy(out_buf + out_len, s, n);
    out_len += n;
}

static void out_str(const char *s)
{
    out_bytes(s, strlen(s));
}

/* A JSON string literal; our word lists hold no characters that need escaping. */
static void out_jstr(const char *s)
{
    out_bytes("\"", 1);
    out_str(s);
    out_bytes("\"", 1);
}

static void out_u64(uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    out_bytes(tmp, (size_t)n);
}

/* Roll for an optional member: 0 present, 1 missing, 2 null (each 5 per mille). */
static int optional_roll(void)
{
    uint32_t r = rng_below(1000);
    return r < 5 ? 1 : r < 10 ? 2 : 0;
}

/* Writes `"key":` (after a comma unless *first, which it then clears) unless the member is
 * missing; writes null and returns 0 when it is null. Returns 1 when the caller must write the
 * value. */
static int out_member(const char *key, int *first)
{
    int roll = optional_roll();
    if (roll == 1)
        return 0;
    if (!*first)
        out_bytes(",", 1);
    *first = 0;
    out_jstr(key);
    out_bytes(":", 1);
    if (roll == 2) {
        out_str("null");
        return 0;
    }
    return 1;
}

/* Picks k distinct indexes out of n into idx (k <= n <= 64) by a partial Fisher-Yates. */
static void pick_distinct(unsigned n, unsigned k, unsigned *idx)
{
    unsigned pool[64];
    for (unsigned i = 0; i < n; i++)
        pool[i] = i;
    for (unsigned i = 0; i < k; i++) {
        unsigned j = i + rng_below(n - i);
        unsigned t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
        idx[i] = pool[i];
    }
}

/* Civil date from days since 1970-01-01 (H. Hinnant's algorithm), written as "YYYY-MM-DD". */
static void out_date(int64_t days)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    char tmp[16];
    int n = snprintf(tmp, sizeof(tmp), "\"%04d-%02d-%02d\"", (int)(y + (m <= 2)), (int)m, (int)d);
    out_bytes(tmp, (size_t)n);
}

/* ---- record parts -------------------------------------------------------------------------- */

static void gen_name(void)
{
    const char *prefix = rng_chance(40) ? name_unicode[rng_below(COUNT_OF(name_unicode))]
                                        : name_ascii[rng_below(COUNT_OF(name_ascii))];
    out_bytes("\"", 1);
    out_str(prefix);
    out_bytes(" ", 1);
    out_str(name_kinds[rng_below(COUNT_OF(name_kinds))]);
    if (rng_chance(200)) { /* a campus or branch suffix */
        out_str(" - ");
        out_str(cities[rng_below(COUNT_OF(cities))]);
        out_str(" Campus");
    }
    out_bytes("\"", 1);
}

static void gen_location(void)
{
    char tmp[48];
    int n;
    out_bytes("{", 1);
    int first = 1;
    if (out_member("address", &first)) {
        n = snprintf(tmp, sizeof(tmp), "\"%u ", 1 + rng_below(9999));
        out_bytes(tmp, (size_t)n);
        out_str(streets[rng_below(COUNT_OF(streets))]);
        out_bytes(" ", 1);
        out_str(street_kinds[rng_below(COUNT_OF(street_kinds))]);
        if (rng_chance(200)) {
            n = snprintf(tmp, sizeof(tmp), " Suite %u", 100 + rng_below(900));
            out_bytes(tmp, (size_t)n);
        }
        out_bytes("\"", 1);
    }
    if (out_member("city", &first))
        out_jstr(cities[rng_below(COUNT_OF(cities))]);
    if (out_member("state", &first)) {
        uint32_t r = rng_below(states_total);
        size_t i = 0;
        while (r >= states[i].weight) {
            r -= states[i].weight;
            i++;
        }
        out_jstr(states[i].code);
    }
    if (out_member("zip", &first)) {
        n = snprintf(tmp, sizeof(tmp), "\"%05u\"", rng_below(100000));
        out_bytes(tmp, (size_t)n);
    }
    out_bytes("}", 1);
}

static unsigned employee_count(void)
{
    uint32_t r = rng_below(100);
    if (r < 70)
        return 5 + rng_below(296);
    if (r < 95)
        return 300 + rng_below(2701);
    return 3000 + rng_below(17001);
}

static void gen_services(void)
{
    unsigned idx[64];
    unsigned k = rng_below(13);
    pick_distinct(COUNT_OF(services), k, idx);
    out_bytes("[", 1);
    for (unsigned i = 0; i < k; i++) {
        if (i)
            out_bytes(",", 1);
        out_jstr(services[idx[i]]);
    }
    out_bytes("]", 1);
}

static void gen_labs(void)
{
    unsigned idx[64], cidx[64];
    unsigned k = rng_below(5);
    pick_distinct(COUNT_OF(lab_names), k, idx);
    out_bytes("[", 1);
    for (unsigned i = 0; i < k; i++) {
        if (i)
            out_bytes(",", 1);
        out_str("{\"lab_name\":");
        out_jstr(lab_names[idx[i]]);
        out_str(",\"certifications\":[");
        unsigned c = rng_below(4);
        pick_distinct(COUNT_OF(certifications), c, cidx);
        for (unsigned j = 0; j < c; j++) {
            if (j)
                out_bytes(",", 1);
            out_jstr(certifications[cidx[j]]);
        }
        out_str("]}");
    }
    out_bytes("]", 1);
}

static void gen_accreditations(void)
{
    /* 2023-01-01 is day 19358 since 1970-01-01; 2030-12-31 is day 22279. */
    const int64_t first_day = 19358, ndays = 22279 - 19358 + 1;
    unsigned k = rng_below(5);
    out_bytes("[", 1);
    for (unsigned i = 0; i < k; i++) {
        const struct body *b = &bodies[rng_below(COUNT_OF(bodies))];
        if (i)
            out_bytes(",", 1);
        out_str("{\"accreditation_body\":");
        if (rng_chance(5))
            out_str("null");
        else
            out_jstr(b->name);
        out_str(",\"accreditation_id\":\"");
        out_str(b->id_prefix); /* e.g. JC-2024-48291: body, year of issue, serial */
        out_bytes("-", 1);
        out_u64(2018 + rng_below(9));
        out_bytes("-", 1);
        out_u64(10000 + rng_below(90000));
        out_str("\",\"valid_until\":");
        if (rng_chance(5))
            out_str("null");
        else
            out_date(first_day + rng_below((uint32_t)ndays));
        out_bytes("}", 1);
    }
    out_bytes("]", 1);
}

static void gen_record(uint64_t index)
{
    char tmp[32];
    /* 2654435761 is odd and not a multiple of 5, hence invertible modulo 10^8. */
    uint64_t id = (index * 2654435761ULL + 12345678ULL) % 100000000ULL;
    int first = 0; /* facility_id is always there */
    int n = snprintf(tmp, sizeof(tmp), "{\"facility_id\":\"FAC%08" PRIu64 "\"", id);
    out_bytes(tmp, (size_t)n);
    if (out_member("facility_name", &first))
        gen_name();
    if (out_member("location", &first))
        gen_location();
    if (out_member("employee_count", &first))
        out_u64(employee_count());
    if (out_member("services", &first))
        gen_services();
    if (out_member("labs", &first))
        gen_labs();
    if (out_member("accreditations", &first))
        gen_accreditations();
    out_str("}\n");
}

/* ---- main ---------------------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t count = 0, seed = 1;
    if (argc < 2 || argc > 3 || parse_u64(argv[1], &count) != 0 ||
        (argc == 3 && parse_u64(argv[2], &seed) != 0) || count > 100000000ULL) {
        fprintf(stderr, "usage: gen COUNT [SEED] > file.ndjson   (COUNT <= 100000000)\n");
        return 2;
    }
    for (size_t i = 0; i < COUNT_OF(states); i++)
        states_total += states[i].weight;
    rng_state = seed;
    for (uint64_t i = 0; i < count && !out_failed; i++)
        gen_record(i);
    out_flush();
    if (out_failed || fflush(stdout) != 0) {
        fprintf(stderr, "gen: write failed\n");
        return 1;
    }
    return 0;
}
