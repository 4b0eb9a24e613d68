// Package config loads Custodian's one YAML configuration file.
//
// It sits before everything else in the data flow: cmd/custodian loads a
// Config (Default, then the file with strict decoding, then CUSTODIAN_*
// environment overrides, then Validate) and the gateway package wires every
// component from it. Unknown keys, in the file or the environment, are
// errors that name the key.
package config
