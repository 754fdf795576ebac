package redistest

import "github.com/redis/go-redis/v9"

// PassHook is a go-redis hook that passes every call through unchanged. A
// test hook embeds it and overrides only the methods it needs, so it need
// not repeat the no-op ones:
//
//	type counter struct {
//		redistest.PassHook
//		n atomic.Int64
//	}
//
//	func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { ... }
type PassHook struct{}

var _ redis.Hook = PassHook{}

func (PassHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (PassHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (PassHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
