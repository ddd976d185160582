//go:build !linux

package main

import (
	"net"
	"time"
)

// setUserTimeout: TCP_USER_TIMEOUT is Linux's (grpc-go sets it only there).
func setUserTimeout(net.Conn, time.Duration) {}
