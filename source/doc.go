// Package source fetches the tenants repository: from Git (HTTPS or SSH, pinned to a
// branch, tag or commit, shallow, with an on-disk cache and one immutable checkout per
// revision) or from a local directory watched for changes. Credentials are read from
// files or the environment and never appear in logs or errors.
package source
