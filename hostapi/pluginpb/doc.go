// Package pluginpb is the Go code generated from plugin.proto, the wire contract between
// Slipway and its stage plugins. Do not edit it: change plugin.proto and run
// hostapi/generate.sh. Use it through package hostapi.
package pluginpb
