/*
 * credentials: AWS credentials from the SDKs' sources, in the SDKs' order: environment, shared
 * files (credentials and config, AWS_PROFILE), ECS/EKS container endpoint, EC2 IMDSv2.
 *
 * Temporary credentials are cached and refreshed ahead of expiry; the provider is thread-safe.
 * Secrets are never logged and are wiped (OPENSSL_cleanse) when dropped.
 */
#ifndef HCPIPE_CREDENTIALS_H
#define HCPIPE_CREDENTIALS_H

#include <stddef.h>
#include <time.h>

struct aws_credentials {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL for long-term keys */
    time_t expiration;   /* 0 = does not expire */
    const char *source;  /* "env", "shared-file", "container", "imds" (static) */
};

/* Wipes and frees the members (not the struct). */
void aws_credentials_clear(struct aws_credentials *c);

struct aws_credentials_provider;

/* A provider following the default chain. Reads the environment at each resolve. Returns NULL
 * on ENOMEM. */
struct aws_credentials_provider *aws_credentials_provider_new(void);
void aws_credentials_provider_free(struct aws_credentials_provider *p);

/* Copies current credentials into *out (clear with aws_credentials_clear()), refreshing them when
 * they expire within 5 minutes. Returns 0, or -1 with a message (no secrets) in err. */
int aws_credentials_get(struct aws_credentials_provider *p, struct aws_credentials *out, char *err,
                        size_t errlen);

/* The `region` of the current profile (AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default")
 * in the config file ($AWS_CONFIG_FILE, default ~/.aws/config) into out. Returns 0, or -1 when
 * there is none (out is then ""). */
int aws_profile_region(char *out, size_t outlen);

#endif
