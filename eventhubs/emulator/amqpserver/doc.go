// Package amqpserver is an AMQP 1.0 server (connection, session and link state machines) written for the
// Event Hubs emulator. The handler sees links; message sections are left encoded.
package amqpserver
