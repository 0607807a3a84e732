package report

import (
	"encoding/json"
	"io"

	"github.com/raas-dev/raas/reconcile"
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
	Counts  map[reconcile.Action]int `json:"counts"`
	Summary string                   `json:"summary"`
	// Totals add up the tenants' quota before and after.
	Totals   Totals     `json:"totals"`
	Platform []Object   `json:"platform"`
	Tenants  []Tenant   `json:"tenants"`
	Deleted  []Deletion `json:"deleted"`
	// PruneBlocked says why nothing would be pruned, when nothing could be.
	PruneBlocked string `json:"pruneBlocked,omitempty"`
	// Errors are problems with the pass as a whole, such as a refused mass delete.
	Errors []string `json:"errors"`
	// Deprecated maps each deprecated profile still pinned to its tenants.
	Deprecated map[string][]string `json:"deprecated,omitempty"`
}

// Totals are the quota totals before and after a pass.
type Totals struct {
	Before reconcile.Quota `json:"before"`
	After  reconcile.Quota `json:"after"`
}

// Tenant is one tenant's part of a Report.
type Tenant struct {
	Name   string           `json:"name"`
	File   string           `json:"file,omitempty"`
	Change reconcile.Change `json:"change"`
	Health reconcile.Health `json:"health"`
	Reason string           `json:"reason,omitempty"`
	// Before and After are the tenant's quota and profile; null when it did not exist.
	Before *reconcile.Quota `json:"before"`
	After  *reconcile.Quota `json:"after"`
	// Create, Update and Delete count its objects by what would happen to them, as the
	// Markdown table does.
	Create  int      `json:"create"`
	Update  int      `json:"update"`
	Delete  int      `json:"delete"`
	Objects []Object `json:"objects"`
}

// Object is one object's entry.
type Object struct {
	// Target is "host" or "virtual" (inside the tenant's vcluster).
	Target render.Target `json:"target"`
	reconcile.Ref
	APIVersion string           `json:"apiVersion,omitempty"`
	Action     reconcile.Action `json:"action"`
	Reason     string           `json:"reason,omitempty"`
	Diff       string           `json:"diff,omitempty"`
}

// Deletion is an object the pass would delete, or keep on purpose.
type Deletion struct {
	// Tenant is empty for a platform object.
	Tenant string        `json:"tenant,omitempty"`
	Target render.Target `json:"target"`
	reconcile.Ref
	Action reconcile.Action `json:"action"`
	Reason string           `json:"reason,omitempty"`
}

// New turns a Result into a Report.
func New(res *reconcile.Result) Report {
	before, after := res.Totals()
	rep := Report{
		Revision: res.Revision, DryRun: res.DryRun, Changed: res.Changed(), Failed: res.Failed(),
		Counts: res.Count(), Summary: res.Summary(), Totals: Totals{Before: before, After: after},
		Platform: objects(res.Select("", "")), Tenants: []Tenant{}, Deleted: []Deletion{},
		PruneBlocked: res.PruneBlocked, Errors: []string{}, Deprecated: res.Deprecated,
	}
	for _, t := range res.Tenants {
		es := res.Select(t.Name, "")
		c, u, d := tally(es)
		rep.Tenants = append(rep.Tenants, Tenant{
			Name: t.Name, File: t.File, Change: t.Change, Health: t.Health, Reason: t.Reason,
			Before: t.Before, After: t.After, Create: c, Update: u, Delete: d, Objects: objects(es),
		})
	}
	for _, e := range res.Entries {
		if e.Action == reconcile.Deleted || e.Action == reconcile.Retained {
			rep.Deleted = append(rep.Deleted, Deletion{Tenant: e.Tenant, Target: e.Target, Ref: e.Ref, Action: e.Action, Reason: e.Reason})
		}
	}
	for _, err := range res.Errors {
		rep.Errors = append(rep.Errors, err.Error())
	}
	return rep
}

func objects(es []reconcile.Entry) []Object {
	out := make([]Object, 0, len(es))
	for _, e := range es {
		out = append(out, Object{Target: e.Target, Ref: e.Ref, APIVersion: e.APIVersion, Action: e.Action, Reason: e.Reason, Diff: e.Diff})
	}
	return out
}

// WriteJSON writes a Result as a Report, indented, with a final newline.
func WriteJSON(w io.Writer, res *reconcile.Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(New(res))
}
