package sessioncap

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The function library: the same scripts as Redis 7 functions.
//
// Redis's Lua builds every function a script defines, and an upvalue for
// every local they capture, on every EVAL: for the shared prelude
// (index.lua and lib.lua, some forty functions) that was a quarter of an
// evicting sign-in (bench/NOTES.md, sixth and seventh rounds). A library
// loaded with FUNCTION LOAD runs its top level once, so the prelude's
// functions are built once per server, and each FCALL runs only its
// script's body. The library's name and its functions' names carry a hash
// of its text, so engines of different versions sharing a server (a
// rolling deploy) each call their own, and loading never replaces
// anything another engine calls.
//
// Servers that have no functions (miniredis, Redis before 7.0) or refuse
// them to the engine's ACL user get the same scripts by EVALSHA/EVAL; so
// does every engine with Config.EvalOnly. A function called at out of
// memory is refused before it starts (its default flags deny OOM), and the
// engine then runs the EVAL form, whose first-write rules the
// out-of-memory endings rely on (lib.lua, done): the behaviour under a full
// Redis is the same in both forms.

// luaScript is one script in its two forms.
type luaScript struct {
	eval *redis.Script // EVALSHA/EVAL
	fn   string        // its function in the library
	fnA  any           // fn boxed once, for prebuilt argument lists
	shaA any           // the EVAL form's SHA-1, boxed once
}

func newLuaScript(name, src string) *luaScript {
	s := redis.NewScript(src)
	fn := libraryName + "_" + name
	return &luaScript{eval: s, fn: fn, fnA: fn, shaA: s.Hash()}
}

// libraryFunctions lists the scripts the library registers, by the name
// their function takes after the library's, with their bodies.
var libraryFunctions = []struct{ name, body string }{
	{"login", "begin()\n" + luaLogin},
	{"validate", luaValidate},
	{"save", "begin()\n" + luaSave},
	{"rotate", "begin()\n" + luaRotate},
	{"end", "begin()\n" + luaEnd},
	{"sessions", "begin()\n" + luaSessions},
}

// libraryName and libraryText are the library and its FUNCTION LOAD
// payload. The name is a hash of the text (written with a placeholder
// name), so any change to a script or to how they are put together names a
// new library. KEYS and ARGV are the library's locals, set by each
// function from its arguments before its body runs, so the bodies and the
// prelude read them as the EVAL form does. Validate's body takes the index
// through indexModule, as in its EVAL form, here without building it.
var libraryName, libraryText = func() (string, string) {
	const placeholder = "sessioncap_LIBRARY"
	var b strings.Builder
	b.WriteString("#!lua name=" + placeholder + "\nlocal KEYS, ARGV\n")
	b.WriteString(luaPrelude)
	b.WriteString("\nlocal function indexModule()\n  indexBegin()\n" +
		"  return {load = indexLoad, move = indexMove, save = indexSave, writes = writes, dead = dead}\nend\n")
	for _, f := range libraryFunctions {
		b.WriteString("redis.register_function('" + placeholder + "_" + f.name + "', function(keys, args)\nKEYS, ARGV = keys, args\n")
		b.WriteString(f.body)
		b.WriteString("\nend)\n")
	}
	text := script(b.String())
	sum := sha1.Sum([]byte(text))
	name := "sessioncap_" + hex.EncodeToString(sum[:8])
	return name, strings.ReplaceAll(text, placeholder, name)
}()

// callFunction runs call, an FCALL, and when the server lacks the library
// loads it and runs call again, once. A caller whose FCALL was refused
// before a load that finished meanwhile (libGen moved) only calls again,
// so after a flush the engine's concurrent callers send one FUNCTION LOAD
// between them.
func (e *Engine) callFunction(ctx context.Context, op Op, call func() (any, error)) (any, error) {
	gen := e.libGen.Load()
	v, err := call()
	if functionMissing(err) {
		e.observe(Observation{Op: op, Outcome: OutcomeScriptRetry})
		if e.libGen.Load() != gen || e.loadLibrary(ctx) == nil {
			v, err = call()
		}
	}
	return v, err
}

// scriptCaller is what runs a script: any go-redis client, and the
// connection WaitReplicas pins (wait.go).
type scriptCaller interface {
	redis.Scripter
	FCall(ctx context.Context, function string, keys []string, args ...any) *redis.Cmd
}

// functions reports whether the engine calls the library rather than
// EVALSHA.
func (e *Engine) functions() bool { return !e.evalOnly.Load() }

// functionMissing: the server has functions but not this library (a new,
// restarted or flushed server, a node that joined a cluster).
func functionMissing(err error) bool {
	// HasErrorPrefix allocates even for nil: this is on every script call.
	return err != nil && redis.HasErrorPrefix(err, "Function not found")
}

// noFunctions: the server has no FCALL or FUNCTION LOAD, or refuses them to
// this user. A refusal of a command the function itself calls names that
// command, not fcall or function, and is the call's error: the function
// may have run in part, so the EVAL form must not run it again.
func noFunctions(err error) bool {
	if err == nil {
		return false
	}
	if redis.HasErrorPrefix(err, "unknown command") {
		return true
	}
	msg := err.Error()
	return redis.HasErrorPrefix(err, "NOPERM") && (strings.Contains(msg, "'fcall'") || strings.Contains(msg, "'function"))
}

// afterFCall decides what a failed FCALL leaves to do: nothing (the error
// stands), or run the EVAL form, which is safe whenever the function did
// not start: out of memory (a function with default flags is refused
// before it runs), no functions on this server, or still no library after
// loading it.
func (e *Engine) afterFCall(ctx context.Context, err error) (evalInstead bool) {
	switch {
	case err == nil:
		return false
	case noFunctions(err):
		e.giveUpFunctions(ctx, err)
		return true
	case redis.HasErrorPrefix(err, "OOM"), functionMissing(err):
		return true
	}
	return false
}

// giveUpFunctions switches the engine to EVAL for good, and says so once.
func (e *Engine) giveUpFunctions(ctx context.Context, err error) {
	if e.evalOnly.Swap(true) {
		return
	}
	e.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "sessioncap: the server has no Redis functions for this engine; scripts run by EVALSHA",
		slog.String("error", err.Error()))
}

// libraryLoad is one FUNCTION LOAD in flight, which the engine's other
// callers that found the library missing wait for instead of sending their
// own: after a restart or a flush, every concurrent call misses at once,
// and each would otherwise send the 42 KB library.
type libraryLoad struct {
	done chan struct{}
	err  error
}

// loadLibrary loads the library on every primary that may run it, once
// for all the callers that ask while a load is in flight.
func (e *Engine) loadLibrary(ctx context.Context) error {
	e.libMu.Lock()
	if l := e.libLoad; l != nil {
		e.libMu.Unlock()
		select {
		case <-l.done:
			return l.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l := &libraryLoad{done: make(chan struct{})}
	e.libLoad = l
	e.libMu.Unlock()
	l.err = e.sendLibrary(ctx)
	if l.err == nil {
		e.libGen.Add(1)
	}
	e.libMu.Lock()
	e.libLoad = nil
	e.libMu.Unlock()
	close(l.done)
	return l.err
}

// sendLibrary sends FUNCTION LOAD to every primary. A library of the same
// name is the same text, so "already exists" is success.
func (e *Engine) sendLibrary(ctx context.Context) error {
	load := func(ctx context.Context, c *redis.Client) error {
		return libraryLoaded(c.FunctionLoad(ctx, libraryText).Err())
	}
	var err error
	switch c := e.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, load)
	case *redis.Ring:
		err = c.ForEachShard(ctx, load)
	default:
		err = libraryLoaded(e.rdb.FunctionLoad(ctx, libraryText).Err())
	}
	if noFunctions(err) {
		e.giveUpFunctions(ctx, err)
	}
	return err
}

func libraryLoaded(err error) error {
	if err != nil && strings.Contains(err.Error(), "already exists") {
		return nil
	}
	return err
}
