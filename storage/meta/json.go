package meta

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
)

// JSON stores V as a JSON text column.
type JSON[T any] struct {
	V T
}

// NewJSON wraps v.
func NewJSON[T any](v T) JSON[T] { return JSON[T]{V: v} }

// Value implements driver.Valuer.
func (j JSON[T]) Value() (driver.Value, error) {
	b, err := json.Marshal(j.V)
	if err != nil {
		return nil, fmt.Errorf("meta: encode json column: %w", err)
	}
	return string(b), nil
}

// Scan implements sql.Scanner.
func (j *JSON[T]) Scan(src any) error {
	var b []byte
	switch s := src.(type) {
	case nil:
		var zero T
		j.V = zero
		return nil
	case string:
		b = []byte(s)
	case []byte:
		b = s
	default:
		return fmt.Errorf("meta: json column: unsupported type %T", src)
	}
	if len(b) == 0 {
		var zero T
		j.V = zero
		return nil
	}
	if err := json.Unmarshal(b, &j.V); err != nil {
		return fmt.Errorf("meta: decode json column: %w", err)
	}
	return nil
}

// GormDataType makes gorm create a text column on every dialect.
func (JSON[T]) GormDataType() string { return "text" }

// MarshalJSON renders the wrapped value.
func (j JSON[T]) MarshalJSON() ([]byte, error) { return json.Marshal(j.V) }

// UnmarshalJSON fills the wrapped value.
func (j *JSON[T]) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &j.V) }
