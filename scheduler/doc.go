// Package scheduler derives the Volcano configuration from the platform and tenant specs:
// one Queue and a set of admission policies per tenant, and the platform-wide
// volcano-scheduler.conf with its gang, capacity and GPU binpack plugins.
package scheduler
