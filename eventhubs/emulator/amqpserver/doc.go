// Package amqpserver is an AMQP 1.0 server written for the Event Hubs emulator: connection, session and
// link state machines over the codec in package amqpwire. A Handler decides about each link the peer
// attaches; message sections are left encoded (go-amqp's exported amqp.Message encodes and decodes them).
//
// Per connection there are two goroutines: a reader, which decodes frames and runs the state machines
// under the connection's mutex, and a writer, which flushes every frame queued meanwhile with one write
// and sends heartbeats at half the peer's idle timeout. Each attach runs the Handler on its own goroutine.
//
// Implemented: protocol header negotiation with SASL (ANONYMOUS, PLAIN) or without it when no
// Authenticate is configured; open/begin/attach/flow/transfer/disposition/detach/end/close; session
// windows (re-granted at half, every flow with next-incoming-id); link credit and delivery counts in both
// directions, drain and echo; multi-frame transfers both ways (split to the peer's max-frame-size,
// reassembled, aborted transfers discarded); max-message-size; heartbeats and our own idle timeout;
// protocol errors closing the connection (amqp:connection:framing-error, amqp:decode-error,
// amqp:not-allowed), ending the session (amqp:session:unattached-handle, handle-in-use, window-violation)
// or detaching the link (amqp:link:transfer-limit-exceeded for a transfer without credit). A delivery is
// never buffered beyond MaxMessageSize (256 MiB when the handler sets none).
//
// Not implemented:
//   - transactions (coordinator links, transactional states) and any link recovery or resumption:
//     unsettled maps in attach are ignored, resume transfers are treated as new ones;
//   - receiver settle mode "second": we settle every disposition we send at once;
//   - sending unsettled: Link.Send always sends pre-settled, so dispositions from the peer are ignored;
//   - SASL mechanisms other than ANONYMOUS and PLAIN, challenges, TLS (the emulator listens in plain TCP);
//   - the server beginning sessions or attaching links itself, and pipelined open;
//   - dynamic nodes, distribution modes, default outcomes: they are only echoed back in the source/target;
//   - channel-max and handle-max limits beyond what the peer itself respects.
//
// Handlers must not call Send or Receive synchronously inside Attach: credit flows only once Attach has
// returned and the attach reply is sent. Start a goroutine instead.
package amqpserver
