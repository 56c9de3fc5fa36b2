package config

import (
	"io"

	"github.com/mdp/qrterminal/v3"
)

// WriteQR prints cfg as a QR code made of Unicode half blocks (two modules
// per character cell, so it fits an 80x24 terminal), which the WireGuard
// mobile apps import directly. Low error correction keeps the code small
// enough for a terminal; a screen has no smudges to correct for.
func WriteQR(w io.Writer, cfg Config) error {
	data, err := Marshal(cfg)
	if err != nil {
		return err
	}
	ew := &errWriter{w: w}
	qrterminal.GenerateWithConfig(string(data), qrterminal.Config{
		Level:          qrterminal.L,
		Writer:         ew,
		HalfBlocks:     true,
		BlackChar:      qrterminal.BLACK_BLACK,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar:      qrterminal.WHITE_WHITE,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		QuietZone:      2,
	})
	return ew.err
}

// errWriter keeps the first write error, which qrterminal discards.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
