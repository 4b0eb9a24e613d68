package webrtc

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/pion/logging"
)

// LevelTrace is the slog level pion's Trace messages are logged at.
const LevelTrace = slog.LevelDebug - 4

// LoggerFactory adapts pion's logging to a log/slog logger. Every pion logger
// it makes logs with the attribute pion=<scope>. Messages are scrubbed of ICE
// credentials (pion's ICE agent prints ufrags and passwords in some debug and
// warning messages), so the result is safe to ship to a log store.
type LoggerFactory struct {
	log *slog.Logger
	min slog.Level
}

var _ logging.LoggerFactory = (*LoggerFactory)(nil)

// NewLoggerFactory returns a LoggerFactory that writes to log, dropping pion
// messages below min before formatting them (pion is chatty at Debug and
// Trace; slog.LevelWarn is a good production floor). A nil log discards
// everything.
func NewLoggerFactory(log *slog.Logger, min slog.Level) *LoggerFactory {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LoggerFactory{log: log, min: min}
}

// NewLogger implements logging.LoggerFactory.
func (f *LoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return &slogLogger{log: f.log.With("pion", scope), min: f.min}
}

type slogLogger struct {
	log *slog.Logger
	min slog.Level
}

func (l *slogLogger) emit(level slog.Level, msg string) {
	if level < l.min || !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, ScrubICECredentials(msg))
}

func (l *slogLogger) emitf(level slog.Level, format string, args ...any) {
	if level < l.min || !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, ScrubICECredentials(fmt.Sprintf(format, args...)))
}

func (l *slogLogger) Trace(msg string)                  { l.emit(LevelTrace, msg) }
func (l *slogLogger) Tracef(format string, args ...any) { l.emitf(LevelTrace, format, args...) }
func (l *slogLogger) Debug(msg string)                  { l.emit(slog.LevelDebug, msg) }
func (l *slogLogger) Debugf(format string, args ...any) { l.emitf(slog.LevelDebug, format, args...) }
func (l *slogLogger) Info(msg string)                   { l.emit(slog.LevelInfo, msg) }
func (l *slogLogger) Infof(format string, args ...any)  { l.emitf(slog.LevelInfo, format, args...) }
func (l *slogLogger) Warn(msg string)                   { l.emit(slog.LevelWarn, msg) }
func (l *slogLogger) Warnf(format string, args ...any)  { l.emitf(slog.LevelWarn, format, args...) }
func (l *slogLogger) Error(msg string)                  { l.emit(slog.LevelError, msg) }
func (l *slogLogger) Errorf(format string, args ...any) { l.emitf(slog.LevelError, format, args...) }

// credentialRE finds a credential keyword and everything after it up to the
// next comma: "remoteUfrag: \"abc\"", "ice-pwd:xyz", "by ufrag: udp4 addr abc".
var credentialRE = regexp.MustCompile(`(?i)(ufrag|pwd|password)([^,\n]*)`)

// ScrubICECredentials replaces everything following an ICE credential keyword
// (ufrag, pwd, password) up to the next comma in msg with " [redacted]", and
// the trailing ufrag of the one pion ICE warning that prints it unlabelled.
func ScrubICECredentials(msg string) string {
	if strings.HasPrefix(msg, "Failed to get port of UDPAddr from ListenUDPInPortRange:") {
		// "…: %s %s %s" with network, address, local ufrag.
		if i := strings.LastIndexByte(msg, ' '); i > 0 {
			msg = msg[:i] + " [redacted]"
		}
	}
	lower := strings.ToLower(msg)
	if !strings.Contains(lower, "ufrag") && !strings.Contains(lower, "pwd") && !strings.Contains(lower, "password") {
		return msg
	}
	return credentialRE.ReplaceAllString(msg, "${1} [redacted]")
}
