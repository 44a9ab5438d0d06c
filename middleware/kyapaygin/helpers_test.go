package kyapaygin_test

import (
	"sync/atomic"

	"github.com/gin-gonic/gin"
)

func init() { gin.SetMode(gin.TestMode) }

// counter counts handler runs.
type counter struct{ n atomic.Int32 }

func (c *counter) handler() gin.HandlerFunc { return func(*gin.Context) { c.n.Add(1) } }
func (c *counter) count() int               { return int(c.n.Load()) }
