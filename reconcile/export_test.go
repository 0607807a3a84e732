package reconcile

// SetMaxInventoryBytes lowers the inventory size limit for a test and returns a function
// that restores it.
func SetMaxInventoryBytes(n int) (restore func()) {
	old := maxInventoryBytes
	maxInventoryBytes = n
	return func() { maxInventoryBytes = old }
}
