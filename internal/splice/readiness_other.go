//go:build !linux

package splice

import "errors"

// Without epoll, Start runs Join on a goroutine: these are never reached.

var errNoReadiness = errors.New("splice: no readiness watcher on this system")

type watch struct{}

func readinessAvailable() bool                     { return false }
func newWatch(socket, func(error)) (*watch, error) { return nil, errNoReadiness }
func (*watch) arm(bool) error                      { return errNoReadiness }
func (*watch) end(error)                           {}
func socketError(socket) error                     { return nil }

type sockReader struct{}

func newSockReader(socket) (*sockReader, error) { return nil, errNoReadiness }
func (*sockReader) read([]byte) (int, error)    { return 0, errNoReadiness }
