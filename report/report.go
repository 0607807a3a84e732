package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/raas-dev/raas/reconcile"
)

// symbols mark each action in a diff.
var symbols = map[reconcile.Action]string{
	reconcile.Created:    "+",
	reconcile.Configured: "~",
	reconcile.Drifted:    "!",
	reconcile.Deleted:    "-",
	reconcile.Retained:   "=",
	reconcile.Skipped:    "?",
	reconcile.Failed:     "x",
	reconcile.Unchanged:  " ",
}

// WriteEntries writes one line per object, grouped by tenant, and each tenant's health: the
// output of `raas apply`. Unchanged objects are left out unless all is set.
func WriteEntries(w io.Writer, res *reconcile.Result, all bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range res.Entries {
		if e.Action == reconcile.Unchanged && !all {
			continue
		}
		scope := e.Tenant
		if scope == "" {
			scope = "(platform)"
		}
		if e.Cluster != "" {
			scope = e.Cluster + "\t" + scope
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s", scope, e.Target, e.Ref, e.Action)
		if e.Reason != "" {
			line += "\t" + e.Reason
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range res.Tenants {
		line := fmt.Sprintf("tenant %s: %s", t.Name, t.Health)
		if t.Cluster != "" {
			line = fmt.Sprintf("tenant %s on cluster %s: %s", t.Name, t.Cluster, t.Health)
		}
		if t.Reason != "" {
			line += ": " + t.Reason
		}
		fmt.Fprintln(w, line)
	}
	return writeProblems(w, res)
}

func writeProblems(w io.Writer, res *reconcile.Result) error {
	for _, rb := range res.Rebuilt {
		fmt.Fprintf(w, "WARNING: %s\n", rb)
	}
	if res.PruneBlocked != "" {
		fmt.Fprintf(w, "nothing pruned: %s\n", res.PruneBlocked)
	}
	for _, err := range res.Errors {
		if _, err := fmt.Fprintf(w, "ERROR: %v\n", err); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, res.Summary())
	return err
}

// WriteDiff writes what a diff found, grouped by tenant: one line per object that would
// change or be skipped, with the unified diff of each changed host object, and one line
// per tenant that would not change.
//
// A fleet's diff is grouped by cluster: each cluster's platform objects and the tenants
// placed on it, a moved tenant under its new cluster with the one it moves from.
func WriteDiff(w io.Writer, res *reconcile.Result) error {
	if len(res.Clusters) == 0 {
		writeDiffPart(w, res)
		return writeProblems(w, res)
	}
	for _, c := range res.Clusters {
		fmt.Fprintf(w, "cluster %s:\n", c)
		writeDiffPart(&indented{w: w}, res.OnCluster(c))
	}
	if placed := res.OnCluster(""); len(placed.Tenants) > 0 {
		fmt.Fprintln(w, "not placed:")
		writeDiffPart(&indented{w: w}, placed)
	}
	return writeProblems(w, res)
}

// writeDiffPart writes the platform's and each tenant's lines of one host's diff.
func writeDiffPart(w io.Writer, res *reconcile.Result) {
	if es := res.Select("", ""); notable(es) > 0 {
		fmt.Fprintln(w, "platform:")
		writeDiffEntries(w, es)
	}
	for _, t := range res.Tenants {
		es := res.Select(t.Name, "")
		head := fmt.Sprintf("tenant %s", t.Name)
		if t.File != "" {
			head += fmt.Sprintf(" (%s)", t.File)
		}
		if t.MovingFrom != "" {
			head += fmt.Sprintf(" moves from cluster %s", t.MovingFrom)
		}
		if notable(es) == 0 && t.Health != reconcile.HealthFailed {
			fmt.Fprintf(w, "%s: no changes\n", head)
			continue
		}
		fmt.Fprintf(w, "%s: %s\n", head, t.Change)
		if t.Health == reconcile.HealthFailed || (t.Change == reconcile.TenantRemoved && t.Health != reconcile.HealthRemoved) {
			fmt.Fprintf(w, "  %s\n", t.Reason)
		}
		if t.MovingFrom != "" {
			fmt.Fprintf(w, "  stays on cluster %s until it is Ready here, then is removed there (its data volume kept as retainData says)\n", t.MovingFrom)
		}
		writeDiffEntries(w, es)
	}
}

// indented indents every line written through it by two spaces.
type indented struct {
	w    io.Writer
	tail bool // the last write ended mid-line
}

func (in *indented) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		if !in.tail {
			b.WriteString("  ")
		}
		b.WriteString(line)
		in.tail = !strings.HasSuffix(line, "\n")
	}
	if _, err := io.WriteString(in.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// changes counts the entries that write, or failed.
func changes(es []reconcile.Entry) int {
	n := 0
	for _, e := range es {
		if e.Action.Writes() || e.Action == reconcile.Failed {
			n++
		}
	}
	return n
}

// notable counts the entries a diff shows: all but the unchanged.
func notable(es []reconcile.Entry) int {
	n := 0
	for _, e := range es {
		if e.Action != reconcile.Unchanged {
			n++
		}
	}
	return n
}

func writeDiffEntries(w io.Writer, es []reconcile.Entry) {
	for _, e := range es {
		if e.Action == reconcile.Unchanged {
			continue
		}
		line := fmt.Sprintf("  %s %s %s %s", symbols[e.Action], e.Target, e.Ref, e.Action)
		if e.Reason != "" {
			line += ": " + e.Reason
		}
		fmt.Fprintln(w, line)
		if e.Diff != "" {
			for _, l := range strings.Split(strings.TrimRight(e.Diff, "\n"), "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
}

// WriteMarkdown writes a diff as a pull request comment: the tenants added, changed and
// removed, the quota and GPU totals before and after, the objects to delete, and the
// changes of each tenant, with Secret values masked.
func WriteMarkdown(w io.Writer, res *reconcile.Result) error {
	var b strings.Builder
	b.WriteString("## raas diff\n\n")
	count := map[reconcile.Change]int{}
	for _, t := range res.Tenants {
		count[t.Change]++
	}
	if res.Revision != "" {
		fmt.Fprintf(&b, "Revision `%s`: ", res.Revision)
	}
	fmt.Fprintf(&b, "**%d added**, **%d changed**, **%d removed**, %d unchanged.\n\n",
		count[reconcile.TenantAdded], count[reconcile.TenantChanged], count[reconcile.TenantRemoved], count[reconcile.TenantUnchanged])

	for _, err := range res.Errors {
		fmt.Fprintf(&b, "> [!CAUTION]\n> %s\n\n", err)
	}
	if res.PruneBlocked != "" {
		fmt.Fprintf(&b, "> [!WARNING]\n> Nothing would be pruned: %s.\n\n", res.PruneBlocked)
	}
	for _, rb := range res.Rebuilt {
		fmt.Fprintf(&b, "> [!WARNING]\n> %s.\n\n", rb)
	}
	for _, ref := range slices.Sorted(maps.Keys(res.Deprecated)) {
		fmt.Fprintf(&b, "> [!WARNING]\n> Profile `%s` is deprecated; still used by: %s.\n\n", ref, strings.Join(res.Deprecated[ref], ", "))
	}

	// A fleet's tenants and quota are shown cluster by cluster.
	type part struct {
		title string
		res   *reconcile.Result
	}
	parts := []part{{"", res}}
	if len(res.Clusters) > 0 {
		parts = nil
		for _, c := range res.Clusters {
			parts = append(parts, part{fmt.Sprintf("Cluster `%s`", c), res.OnCluster(c)})
		}
		if placed := res.OnCluster(""); len(placed.Tenants) > 0 {
			parts = append(parts, part{"Not placed", placed})
		}
	}
	for _, pt := range parts {
		if pt.title != "" {
			fmt.Fprintf(&b, "### %s\n\n", pt.title)
		}
		writeTenantTable(&b, pt.res)
		b.WriteString("\n")
	}

	b.WriteString("### Quota\n\n| | Before | After | Change |\n| --- | ---: | ---: | ---: |\n")
	for _, pt := range parts {
		before, after := pt.res.Totals()
		suffix := ""
		if pt.title != "" {
			suffix = ", " + strings.TrimPrefix(pt.title, "Cluster ")
		}
		for _, row := range []struct {
			name          string
			before, after *resource.Quantity
		}{
			{"CPU", before.CPU, after.CPU},
			{"Memory", before.Memory, after.Memory},
			{"GPUs", before.GPU, after.GPU},
			{"Guaranteed GPUs", before.GuaranteedGPU, after.GuaranteedGPU},
		} {
			fmt.Fprintf(&b, "| %s%s | %s | %s | %s |\n", row.name, suffix, quantity(row.before), quantity(row.after), delta(row.before, row.after))
		}
	}

	b.WriteString("\n### Objects to delete\n\n")
	deleted := 0
	for _, e := range res.Entries {
		switch e.Action {
		case reconcile.Deleted:
			fmt.Fprintf(&b, "- %s: %s `%s`\n", scopeOf(e), e.Target, e.Ref)
			deleted++
		case reconcile.Retained:
			fmt.Fprintf(&b, "- %s: %s `%s`: **kept**, %s\n", scopeOf(e), e.Target, e.Ref, e.Reason)
			deleted++
		}
	}
	if deleted == 0 {
		b.WriteString("None.\n")
	}

	var details strings.Builder
	for _, t := range res.Tenants {
		var lines []string
		for _, e := range res.Select(t.Name, "") {
			if e.Action != reconcile.Configured && e.Action != reconcile.Drifted && e.Action != reconcile.Failed {
				continue
			}
			line := fmt.Sprintf("%s %s %s %s", symbols[e.Action], e.Target, e.Ref, e.Action)
			if e.Reason != "" {
				line += ": " + e.Reason
			}
			lines = append(lines, line)
			if e.Diff != "" {
				lines = append(lines, strings.Split(strings.TrimRight(e.Diff, "\n"), "\n")...)
			}
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&details, "<details><summary><code>%s</code></summary>\n\n```diff\n%s\n```\n\n</details>\n\n", t.Name, strings.Join(lines, "\n"))
	}
	if details.Len() > 0 {
		b.WriteString("\n### Changes\n\n")
		b.WriteString(strings.TrimRight(details.String(), "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTenantTable writes a row for the platform, if it changes, and one per tenant.
func writeTenantTable(b *strings.Builder, res *reconcile.Result) {
	b.WriteString("| Tenant | Profile | Change | Health | Create | Update | Delete |\n| --- | --- | --- | --- | ---: | ---: | ---: |\n")
	platform := res.Select("", "")
	if changes(platform) > 0 {
		c, u, d := tally(platform)
		fmt.Fprintf(b, "| _platform_ | | changed | | %d | %d | %d |\n", c, u, d)
	}
	for _, t := range res.Tenants {
		c, u, d := tally(res.Select(t.Name, ""))
		health := ""
		if t.Health == reconcile.HealthFailed {
			health = "Failed: " + escapeCell(t.Reason)
		}
		change := string(t.Change)
		if t.MovingFrom != "" {
			change += fmt.Sprintf(" (moves from `%s`)", t.MovingFrom)
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %d | %d | %d |\n", t.Name, profileCell(t), change, health, c, u, d)
	}
}

func tally(es []reconcile.Entry) (create, update, del int) {
	for _, e := range es {
		switch e.Action {
		case reconcile.Created:
			create++
		case reconcile.Configured, reconcile.Drifted:
			update++
		case reconcile.Deleted:
			del++
		}
	}
	return create, update, del
}

func scopeOf(e reconcile.Entry) string {
	scope := "_platform_"
	if e.Tenant != "" {
		scope = "`" + e.Tenant + "`"
	}
	if e.Cluster != "" {
		scope += " on `" + e.Cluster + "`"
	}
	return scope
}

func quantity(q *resource.Quantity) string {
	if q == nil {
		return "0"
	}
	return q.String()
}

func delta(before, after *resource.Quantity) string {
	var d resource.Quantity
	if after != nil {
		d = after.DeepCopy()
	}
	if before != nil {
		d.Sub(*before)
	}
	switch d.Sign() {
	case 0:
		return "0"
	case 1:
		return "+" + d.String()
	}
	return d.String()
}

func escapeCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// profileCell names the tenant's profile, and the move when a change moves it.
func profileCell(t reconcile.TenantResult) string {
	var before, after string
	if t.Before != nil {
		before = t.Before.Profile
	}
	if t.After != nil {
		after = t.After.Profile
	}
	switch {
	case before != "" && after != "" && before != after:
		return fmt.Sprintf("`%s` → `%s`", before, after)
	case after != "":
		return "`" + after + "`"
	case before != "":
		return "`" + before + "`"
	}
	return ""
}
