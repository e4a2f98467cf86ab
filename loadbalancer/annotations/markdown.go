package annotations

import "strings"

// Doc markers delimit the generated table inside docs/annotations.md.
const (
	DocBegin = "<!-- BEGIN ANNOTATIONS TABLE (generated from loadbalancer/annotations.Table; run: UPDATE_DOCS=1 go test ./loadbalancer/annotations) -->"
	DocEnd   = "<!-- END ANNOTATIONS TABLE -->"
)

// MarkdownTable renders Table as the Markdown table documented for users.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| Annotation | Default | Allowed values | Meaning |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, s := range Table {
		b.WriteString("| `" + s.Name + "` | " + esc(s.Default) + " | " + esc(s.Allowed) + " | " + esc(s.Meaning) + " |\n")
	}
	return b.String()
}

func esc(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
