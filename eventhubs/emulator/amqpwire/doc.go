// Package amqpwire is an AMQP 1.0 codec written from the OASIS specification (part 1, types; part 2,
// frames and performatives; part 3, delivery states and termini; part 5, SASL frames). It encodes with
// append-style functions and decodes with a Reader whose errors are sticky; decoding never trusts a length
// or count beyond the bytes at hand and bounds nesting, so that hostile input fails cleanly.
//
// Message sections are not decoded here: a transfer's payload is raw bytes.
package amqpwire
