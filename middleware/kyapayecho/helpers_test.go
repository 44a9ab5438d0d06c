package kyapayecho_test

import (
	"sync/atomic"

	"github.com/labstack/echo/v4"
)

// counter counts handler runs.
type counter struct{ n atomic.Int32 }

func (c *counter) middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(ctx echo.Context) error {
			c.n.Add(1)
			return next(ctx)
		}
	}
}

func (c *counter) count() int { return int(c.n.Load()) }
