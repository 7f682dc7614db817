#!/bin/sh
# Creates deploy/compose/secrets/: sealtrail signing keys (with the image itself), the MinIO
# root password, the matching AWS credentials file for sealtrail, and Grafana's admin
# password. Never commit this directory. Publish secrets/keys/public.json to verifiers.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets/keys
chmod 700 secrets secrets/keys
# The containers run as uid 10001 and sealtrail refuses key files others can read, so the
# keys are created for, and owned by, that uid.
docker run --rm -u 0 -e SEALTRAIL_KEYS_DIR=/keys -v "$PWD/secrets/keys:/keys" \
    --entrypoint /bin/sh sealtrail:0.1.0 -c 'sealtrail keys init && chown -R 10001 /keys'

[ -f secrets/minio-password ] || head -c 24 /dev/urandom | base64 > secrets/minio-password
[ -f secrets/grafana-admin-password ] || head -c 18 /dev/urandom | base64 > secrets/grafana-admin-password
printf '[default]\naws_access_key_id = sealtrail\naws_secret_access_key = %s\n' \
    "$(cat secrets/minio-password)" > secrets/aws-credentials
chmod 600 secrets/minio-password secrets/grafana-admin-password secrets/aws-credentials
echo "secrets written to $PWD/secrets"
