package gossip

import (
	"log/slog"
	"regexp"
	"strings"
)

// memberlist logs through a *log.Logger with lines like
//
//	[ERR] memberlist: Decrypt packet failed: No installed keys could decrypt the message from=198.18.0.2:7946
//
// parseMemberlistLine turns one into a level, a message without the tag and the
// "memberlist:" prefix, and the sender as its own attribute, so our logs show
// level=WARN msg="Decrypt packet failed: …" from=… instead of the raw line inside
// another line. [ERR] becomes WARN: memberlist says ERR about input from other
// hosts (wrong key, garbage, a peer that went away), which this host survives.
func parseMemberlistLine(s string) (level slog.Level, msg string, attrs []any) {
	s = strings.TrimSpace(s)
	level = slog.LevelInfo
	for tag, l := range map[string]slog.Level{"[ERR]": slog.LevelWarn, "[WARN]": slog.LevelWarn, "[INFO]": slog.LevelInfo, "[DEBUG]": slog.LevelDebug} {
		if i := strings.Index(s, tag); i >= 0 {
			level, s = l, strings.TrimSpace(s[i+len(tag):])
			break
		}
	}
	s = strings.TrimPrefix(s, "memberlist: ")
	if i := strings.LastIndex(s, " from="); i >= 0 && !strings.ContainsAny(s[i+len(" from="):], " \t\n") {
		attrs = append(attrs, "from", s[i+len(" from="):])
		s = s[:i]
	}
	return level, flattenErrors(s), attrs
}

// flattenErrors puts hashicorp/go-multierror's layout ("2 errors occurred:\n\t* a\n\t* b\n\n")
// on one line ("a; b"), for log lines and for errors logged as attributes.
func flattenErrors(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	var head string
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if m := multiHeader.FindStringIndex(line); m != nil {
			head += strings.TrimSpace(line[:m[0]])
			continue
		}
		parts = append(parts, strings.TrimPrefix(line, "* "))
	}
	if head != "" {
		return head + " " + strings.Join(parts, "; ")
	}
	return strings.Join(parts, "; ")
}

var multiHeader = regexp.MustCompile(`\d+ errors? occurred:$`)

// errAttr is an error as a one-line log attribute.
func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.String("err", "")
	}
	return slog.String("err", flattenErrors(err.Error()))
}
