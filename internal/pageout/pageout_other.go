//go:build !linux

package pageout

import "errors"

// Run does nothing but on Linux.
func Run() (int64, error) { return 0, errors.New("only on Linux") }

// RSSFile is only known on Linux.
func RSSFile() (int64, error) { return 0, errors.New("only on Linux") }
