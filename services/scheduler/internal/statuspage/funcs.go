package statuspage

import (
	"fmt"
	"html/template"
	"time"
)

var funcs = template.FuncMap{
	"dur":   duration,
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05 UTC") },
	"stamp": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"rate":  func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"secs":  func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) },
	"add":   func(a, b int) int { return a + b },
}

// duration is short and readable: 42s, 3m05s, 2h10m.
func duration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}
