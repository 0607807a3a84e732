// Package schema defines the raas v1alpha1 configuration: the Platform (raas.yaml) and one
// Tenant per file under tenants/. It decodes them strictly, with file:line:col on every
// error, fills in defaults, and validates each tenant and the platform as a whole.
package schema
