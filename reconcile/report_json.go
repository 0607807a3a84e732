package reconcile

import (
	"encoding/json"
	"io"

	"github.com/raas-dev/raas/render"
)

// Report is a Result as data, the output of `raas diff -o json`: the same tenants,
// objects, totals and problems as the text and Markdown, with stable field names for bots
// and policy checks. The README describes each field.
type Report struct {
	Revision string `json:"revision"`
	DryRun   bool   `json:"dryRun"`
	// Changed and Failed are Result.Changed and Result.Failed.
	Changed bool `json:"changed"`
	Failed  bool `json:"failed"`
	// Counts is how many objects have each action; Summary says it in one line.
	Counts  map[Action]int `json:"counts"`
	Summary string         `json:"summary"`
	// Totals add up the tenants' quota before and after.
	Totals   ReportTotals     `json:"totals"`
	Platform []ReportObject   `json:"platform"`
	Tenants  []ReportTenant   `json:"tenants"`
	Deleted  []ReportDeletion `json:"deleted"`
	// PruneBlocked says why nothing would be pruned, when nothing could be.
	PruneBlocked string `json:"pruneBlocked,omitempty"`
	// Errors are problems with the pass as a whole, such as a refused mass delete.
	Errors []string `json:"errors"`
	// Deprecated maps each deprecated profile still pinned to its tenants.
	Deprecated map[string][]string `json:"deprecated,omitempty"`
}

// ReportTotals are the quota totals before and after a pass.
type ReportTotals struct {
	Before Quota `json:"before"`
	After  Quota `json:"after"`
}

// ReportTenant is one tenant's part of a Report.
type ReportTenant struct {
	Name   string `json:"name"`
	File   string `json:"file,omitempty"`
	Change Change `json:"change"`
	Health Health `json:"health"`
	Reason string `json:"reason,omitempty"`
	// Before and After are the tenant's quota and profile; null when it did not exist.
	Before *Quota `json:"before"`
	After  *Quota `json:"after"`
	// Create, Update and Delete count its objects by what would happen to them, as the
	// Markdown table does.
	Create  int            `json:"create"`
	Update  int            `json:"update"`
	Delete  int            `json:"delete"`
	Objects []ReportObject `json:"objects"`
}

// ReportObject is one object's entry.
type ReportObject struct {
	// Target is "host" or "virtual" (inside the tenant's vcluster).
	Target render.Target `json:"target"`
	Ref
	APIVersion string `json:"apiVersion,omitempty"`
	Action     Action `json:"action"`
	Reason     string `json:"reason,omitempty"`
	Diff       string `json:"diff,omitempty"`
}

// ReportDeletion is an object the pass would delete, or keep on purpose.
type ReportDeletion struct {
	// Tenant is empty for a platform object.
	Tenant string        `json:"tenant,omitempty"`
	Target render.Target `json:"target"`
	Ref
	Action Action `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// NewReport turns a Result into a Report.
func NewReport(res *Result) Report {
	before, after := res.Totals()
	rep := Report{
		Revision: res.Revision, DryRun: res.DryRun, Changed: res.Changed(), Failed: res.Failed(),
		Counts: res.Count(), Summary: res.Summary(), Totals: ReportTotals{Before: before, After: after},
		Platform: objects(res.Select("", "")), Tenants: []ReportTenant{}, Deleted: []ReportDeletion{},
		PruneBlocked: res.PruneBlocked, Errors: []string{}, Deprecated: res.Deprecated,
	}
	for _, t := range res.Tenants {
		es := res.Select(t.Name, "")
		c, u, d := tally(es)
		rep.Tenants = append(rep.Tenants, ReportTenant{
			Name: t.Name, File: t.File, Change: t.Change, Health: t.Health, Reason: t.Reason,
			Before: t.Before, After: t.After, Create: c, Update: u, Delete: d, Objects: objects(es),
		})
	}
	for _, e := range res.Entries {
		if e.Action == Deleted || e.Action == Retained {
			rep.Deleted = append(rep.Deleted, ReportDeletion{Tenant: e.Tenant, Target: e.Target, Ref: e.Ref, Action: e.Action, Reason: e.Reason})
		}
	}
	for _, err := range res.Errors {
		rep.Errors = append(rep.Errors, err.Error())
	}
	return rep
}

func objects(es []Entry) []ReportObject {
	out := make([]ReportObject, 0, len(es))
	for _, e := range es {
		out = append(out, ReportObject{Target: e.Target, Ref: e.Ref, APIVersion: e.APIVersion, Action: e.Action, Reason: e.Reason, Diff: e.Diff})
	}
	return out
}

// WriteJSON writes a Result as a Report, indented, with a final newline.
func WriteJSON(w io.Writer, res *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(NewReport(res))
}
