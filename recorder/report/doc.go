// Package report defines a recording's completeness report (SPEC section
// 5): what was expected, received, lost, late, duplicated or dropped, which
// spans of the recording timeline are lost or were gated (paused, excluded
// for lack of consent), keyframe requests and NACKs sent, and the first and
// last packet times.
//
// In the data flow it is produced by recorder/pipeline when a recording
// closes, stored with the recording (meta.Recording.Completeness, via Map)
// and carried in its events. Its JSON keys are snake_case and stable.
package report
