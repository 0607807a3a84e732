// Package secret reads a credential given either as a value or as a file, as raas takes
// every credential (from the environment or a mounted Secret). Errors name the file,
// never its content.
package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Read returns value, or when it is empty and file is set, the content of file without
// surrounding white space. A file that does not exist counts as unset, as an optional
// Secret that is not mounted. what names the credential in errors.
func Read(what, value, file string) (string, error) {
	if value != "" || file == "" {
		return value, nil
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s file: %w", what, err)
	}
	return strings.TrimSpace(string(data)), nil
}
