package sessioncap

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestInlineConstants(t *testing.T) {
	t.Parallel()
	values := map[string]string{"SID_LEN": "16", "CODE_X": "('X')", "STATUS_FULL": "(-1)"}
	for _, c := range []struct{ in, want string }{
		{"local a = sub(r, 1, SID_LEN)", "local a = sub(r, 1, 16)"},
		{"x = CODE_X .. SID_LEN..y", "x = ('X') .. 16..y"},
		{"return {STATUS_FULL}", "return {(-1)}"},
		{"-- SID_LEN in a comment\nSID_LEN", "-- SID_LEN in a comment\n16"},
		{"a = 'SID_LEN' .. \"SID_LEN\"", "a = 'SID_LEN' .. \"SID_LEN\""},
		{"a = 'it\\'s SID_LEN'", "a = 'it\\'s SID_LEN'"},
		{"o.SID_LEN, o:SID_LEN()", "o.SID_LEN, o:SID_LEN()"},
		{"XSID_LEN, SID_LENX, SID_LEN_2", "XSID_LEN, SID_LENX, SID_LEN_2"},
		{"n = 0x1F + 1e3", "n = 0x1F + 1e3"},
		{"#CODE_X", "#('X')"},
	} {
		if got := inlineConstants(c.in, values); got != c.want {
			t.Errorf("inlineConstants(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestScriptsCarryNoProtocolNames: every name protocol.lua defines is
// replaced in every compiled script, so none is left as a global (an
// error at run time, in Redis only). It reads the scripts its own way (a
// regular expression, not the tokenizer) so that a misread string or
// comment in inlineConstants shows here. The tokenizer assumes no long
// strings or long comments, and this holds the scripts to that.
func TestScriptsCarryNoProtocolNames(t *testing.T) {
	t.Parallel()
	values, err := protocolValues(luaProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if len(values) < 40 {
		t.Fatalf("protocol.lua gave %d constants, want them all", len(values))
	}
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	word := regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
	noise := regexp.MustCompile(`--[^\n]*|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"`)
	if !word.MatchString(luaPrelude + luaValidate) {
		t.Fatal("the scripts name no protocol constant: the check below would prove nothing")
	}
	for name, src := range map[string]string{
		"login": script(luaPrelude, luaLogin), "validate": script(luaIndexModule, luaValidate),
		"save": script(luaPrelude, luaSave), "rotate": script(luaPrelude, luaRotate),
		"end": script(luaPrelude, luaEnd), "sessions": script(luaPrelude, luaSessions),
	} {
		if m := word.FindString(noise.ReplaceAllString(src, "")); m != "" {
			t.Errorf("%s: protocol name %s is left in the code", name, m)
		}
	}
	files, _ := filepath.Glob("lua/*.lua")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "[[") || strings.Contains(string(b), "[=") {
			t.Errorf("%s: a long string or comment; inlineConstants does not read those", f)
		}
	}
}

func TestProtocolValuesRejectsNonsense(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"local A = B",
		"local A, B = 1",
		"local A = 1\nlocal A = 2",
		"x = 1",
	} {
		if _, err := protocolValues(src); err == nil {
			t.Errorf("protocolValues(%q): no error", src)
		}
	}
}
