// Package vclusterconfig reads the kubeconfig a vcluster exports into its host namespace:
// the one place that knows the Secret's name and key, for the reconciler, the PodGroup
// bridges and the test vclusters.
package vclusterconfig
