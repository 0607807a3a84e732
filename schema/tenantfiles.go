package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// The rule for entries under tenants/. Every entry is either read as a tenant, ignored by
// name, or refused with a problem that names it, so that nothing a person put there is
// silently taken for a removed tenant:
//
//   - read: <name>.yaml and <name>.yml, as a regular file or as a symbolic link that
//     resolves, inside the repository, to a regular file;
//   - ignored: names starting with a dot (.gitkeep, editor swap files), backups ending
//     in "~", *.md files, and README files in any case and with any extension but
//     .yaml and .yml (README, readme.txt; readme.yaml is a tenant called readme);
//   - refused: anything else: subdirectories, other extensions (.json, .YAML, .txt),
//     symbolic links that are absolute, lead out of the repository, dangle or end at a
//     directory, and other file types (sockets, devices, pipes).
//
// A refused entry is an error, so it blocks pruning as any validation error does, and it
// is in Repo.Rejected under the name without its extension, so that a tenant of that
// name keeps running as last applied. The files in a refused subdirectory are refused one
// by one, so that a tenant file moved into one keeps its tenant too.

// maxLinkHops bounds the symbolic links followed to resolve one entry, as Linux does.
const maxLinkHops = 40

// tenantFile is one entry under tenants/ to read as a tenant: File is its name in the
// repository, Read the regular file it resolves to (the same unless File is a link).
type tenantFile struct {
	File, Read string
}

// refusedFile is an entry under tenants/ that is neither read nor ignored.
type refusedFile struct {
	File, Reason string
}

// ignoredTenantEntry reports whether a name under tenants/ is left alone on purpose.
func ignoredTenantEntry(name string) bool {
	ext := path.Ext(name)
	readme := strings.EqualFold(strings.TrimSuffix(name, ext), "README") && ext != ".yaml" && ext != ".yml"
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") || readme ||
		strings.EqualFold(ext, ".md")
}

// tenantFiles sorts the entries of tenants/ into the files to read and the ones refused,
// both in lexical order. A missing tenants directory holds none.
func tenantFiles(fsys fs.FS) ([]tenantFile, []refusedFile, error) {
	entries, err := fs.ReadDir(fsys, TenantsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", TenantsDir, err)
	}
	var files []tenantFile
	var refused []refusedFile
	for _, e := range entries {
		name := path.Join(TenantsDir, e.Name())
		if ignoredTenantEntry(e.Name()) {
			continue
		}
		ext := path.Ext(e.Name())
		yamlName := ext == ".yaml" || ext == ".yml"
		refuse := func(format string, args ...any) {
			refused = append(refused, refusedFile{File: name, Reason: fmt.Sprintf(format, args...)})
		}
		switch {
		case !yamlName && e.IsDir():
			inside, err := subdirFiles(fsys, name)
			if err != nil {
				return nil, nil, err
			}
			if len(inside) == 0 {
				refuse("a directory: tenants/ holds one <name>.yaml file per tenant and does not read subdirectories")
			}
			for _, f := range inside {
				refused = append(refused, refusedFile{File: f, Reason: "in a subdirectory, not read: tenants/ holds one <name>.yaml file per tenant; move it to " + path.Join(TenantsDir, path.Base(f))})
			}
		case !yamlName:
			refuse("not read as a tenant: tenant files are named <name>.yaml or <name>.yml (README files, *.md files and names starting with a dot are ignored)")
		case e.Type().IsRegular():
			files = append(files, tenantFile{File: name, Read: name})
		case e.Type()&fs.ModeSymlink != 0:
			target, reason, err := resolveLink(fsys, name)
			switch {
			case err != nil:
				return nil, nil, fmt.Errorf("read %s: %w", name, err)
			case reason != "":
				refuse("%s", reason)
			default:
				files = append(files, tenantFile{File: name, Read: target})
			}
		case e.IsDir():
			refuse("a directory, not a tenant file")
		default:
			refuse("not a regular file (%s)", e.Type())
		}
	}
	slices.SortFunc(refused, func(a, b refusedFile) int { return strings.Compare(a.File, b.File) })
	return files, refused, nil
}

// subdirFiles lists the files under dir, at any depth, except the ignored ones.
func subdirFiles(fsys fs.FS, dir string) ([]string, error) {
	var files []string
	err := fs.WalkDir(fsys, dir, func(name string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case name != dir && ignoredTenantEntry(d.Name()) && d.IsDir():
			return fs.SkipDir
		case ignoredTenantEntry(d.Name()) || d.IsDir():
			return nil
		}
		files = append(files, name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return files, nil
}

// resolveLink follows the symbolic link name, and any link on the way, inside fsys. It
// returns the regular file it ends at, or why it is refused: it is absolute, leads out of
// the repository, dangles, loops, or ends at something other than a regular file. err is
// for a repository that cannot be read.
func resolveLink(fsys fs.FS, name string) (target, reason string, err error) {
	var done []string // resolved components, none of them a link
	pending := strings.Split(name, "/")
	hops := 0
	for len(pending) > 0 {
		elem := pending[0]
		pending = pending[1:]
		cur := path.Join(append(done, elem)...)
		info, err := fs.Lstat(fsys, cur)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Sprintf("a symbolic link that dangles: %s does not exist in the repository", cur), nil
		}
		if err != nil {
			return "", "", err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			if len(pending) > 0 && !info.IsDir() {
				return "", fmt.Sprintf("a symbolic link that dangles: %s is not a directory", cur), nil
			}
			done = append(done, elem)
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", "a symbolic link in a loop (more than 40 links to follow)", nil
		}
		to, err := fs.ReadLink(fsys, cur)
		if err != nil {
			return "", "", err
		}
		if path.IsAbs(to) {
			return "", fmt.Sprintf("a symbolic link to %s, an absolute path: links must stay inside the repository", to), nil
		}
		next := path.Join(path.Join(done...), to)
		if next == ".." || strings.HasPrefix(next, "../") {
			return "", fmt.Sprintf("a symbolic link to %s, which leads out of the repository", to), nil
		}
		done = nil
		if next != "." {
			pending = append(strings.Split(next, "/"), pending...)
		}
	}
	target = path.Join(done...)
	info, err := fs.Stat(fsys, target)
	if err != nil {
		return "", "", err
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Sprintf("a symbolic link to %s, which is not a regular file", target), nil
	}
	return target, "", nil
}
