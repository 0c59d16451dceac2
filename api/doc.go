// Package api serves the subset of the Docker Engine API that a create-only engine can honour,
// over a *core.Engine, so that the docker CLI, the moby Go client and docker-py create, list,
// inspect and remove containers (never start them) and load, list, inspect, tag and remove images
// through Slipway's pipeline.
//
// # Routes
//
// Every route answers both under a version prefix (/v1.50/containers/json) and without one
// (the server's default version), as dockerd does:
//
//	HEAD|GET /_ping                 Api-Version, Ostype, Server, Builder-Version, Swarm,
//	                                Docker-Experimental, Cache-Control, Pragma; body "OK"
//	GET      /version, /info
//	POST     /containers/create     ?name=&platform=; the flat Config+HostConfig+NetworkingConfig
//	                                body; 201 {"Id","Warnings"} (Warnings never null)
//	GET      /containers/json       ?all=&limit=&size=&filters= (every key moby's daemon/list.go
//	                                accepts: name, id, label, status, ancestor, before, since,
//	                                exited, health, is-task, isolation, network, volume,
//	                                publish, expose; any other is "invalid filter 'KEY'")
//	GET      /containers/{id}/json  ?size=; SizeRw and SizeRootFs as moby counts them
//	DELETE   /containers/{id}       ?force=&v=; 204
//	POST     /images/load           ?quiet=; docker-save and OCI layout tarballs, plain or
//	                                compressed; a JSON message stream: unless quiet, "Loading
//	                                layer" progress per layer, then {"stream":"Loaded image: ..."}
//	GET      /images/json           ?filters= (reference, dangling, label)
//	GET      /images/{name}/json    the name may hold "/" and ":"
//	POST     /images/{name}/tag     ?repo=&tag=; 201, the name moved from any image that had it
//	DELETE   /images/{name}
//	GET      /events                ?since=&until=&filters= (type, event, container, image, volume,
//	                                label); streamed JSON lines, closed once until has passed;
//	                                container create/destroy and image load/untag/delete
//	POST     /images/create         501: pulling is not supported; the message says to use
//	                                docker load
//	GET      /volumes               ?filters= (dangling, name, driver, label); a ListResponse
//	GET      /volumes/{name}
//	POST     /volumes/create        a volume.CreateRequest; local driver only; 201 the volume
//	                                (an existing one as it is)
//	DELETE   /volumes/{name}        ?force=; 204; 409 "remove NAME: volume is in use - [ID]"
//	POST     /volumes/prune         ?filters= (all, label, label!); anonymous volumes unless
//	                                all=true (all of them below API 1.42); a PruneReport
//
// Anything else answers 404 {"message":"page not found"}, so that clients fall through as they
// do against dockerd (docker inspect tries the next object type on a 404).
//
// # Versions
//
// The server advertises API version 1.50 (what docker CLI 28.2 speaks) and accepts requests for
// 1.24 up to 1.50; a request outside that range is refused with moby's texts ("client version X
// is too old. Minimum supported API version is 1.24, ..." / "... is too new. Maximum supported
// API version is 1.50"), in plain text below 1.24 as moby does. Behaviour that moby gates on the
// request's version is gated the same way where it concerns create (AutoRemove below 1.25,
// shareable IPC below 1.40, platform from 1.41, several endpoints from 1.44, ...), and events
// carry the legacy status/id/from keys below 1.52.
//
// # Errors
//
// An error is {"message": ...} with Content-Type exactly application/json and the HTTP status
// of its errdefs class, as moby's httpstatus maps them: invalid argument 400, not found 404,
// conflict 409, failed precondition 400 (moby's mapping of gRPC FailedPrecondition),
// unavailable 503, canceled, internal and unclassified 500. Messages are the engine's, which
// are moby's where clients match on them ("No such container: x", "Conflict. The container
// name ..."). Errors after a stream began (image load) are sent in the stream as
// {"errorDetail":{"message":m},"error":m}, as moby does.
//
// # Decoding
//
// Bodies are decoded leniently, as moby does: unknown keys and nulls are ignored, and a plain
// string is accepted where moby's old StrSlice accepted one (Cmd, Entrypoint, Shell,
// HostConfig.CapAdd and HostConfig.CapDrop). Query booleans follow moby's BoolValue: "", "0",
// "no", "false" and "none" (any case) are false, anything else true. Filters are accepted in both
// encodings clients send: {"key":{"value":true}} and {"key":["value"]}.
//
// # Logging and shutdown
//
// Every request is logged through the hclog logger at debug level (method, path, status,
// duration); failures with a 5xx status at error level. Server.CloseStreams ends the event
// streams, so that http.Server.Shutdown, which waits for handlers, does not wait for
// clients that follow events.
package api
