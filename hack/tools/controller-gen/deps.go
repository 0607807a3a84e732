// Package tools pins the Go types that controller-gen turns into CRDs.
package tools

import _ "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
