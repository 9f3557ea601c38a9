package amqpserver

import (
	"io"
	"net"
	"testing"
	"time"

	w "github.com/netherite-go/netherite/eventhubs/emulator/amqpwire"
)

func frames(t testing.TB, ch uint16, ps ...w.Performative) []byte {
	var b []byte
	for _, p := range ps {
		var err error
		if b, err = w.AppendFrame(b, w.TypeAMQP, ch, p); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// FuzzServerFrames feeds arbitrary frames to a connection after the open: the server must neither panic
// nor wedge, and every goroutine of the connection must end once the peer hangs up.
func FuzzServerFrames(f *testing.F) {
	begin := &w.Begin{IncomingWindow: 100, OutgoingWindow: 100}
	f.Add(frames(f, 0, begin, &w.Attach{Name: "s", Role: w.RoleSender, Target: &w.Target{Address: "q"}},
		&w.Transfer{Handle: 0, HasDeliveryID: true, DeliveryTag: []byte{1}, More: true, Payload: []byte{0, 0x53, 0x75}},
		&w.Transfer{Handle: 0, Payload: []byte{0xa0, 1, 7}},
		&w.Detach{Handle: 0, Closed: true}, &w.End{}))
	f.Add(frames(f, 3, begin, &w.Attach{Name: "r", Role: w.RoleReceiver, Source: &w.Source{Address: "q"}},
		&w.Flow{HasNextIncomingID: true, IncomingWindow: 10, HasHandle: true, HasLinkCredit: true, LinkCredit: 5, Drain: true},
		&w.Disposition{Role: w.RoleReceiver, First: 0, Settled: true, State: &w.Accepted{}}, &w.Close{}))
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := NewServer(Config{IdleTimeout: 2 * time.Second, Handler: newQueueHandler()})
		a, b := net.Pipe()
		c := newConn(s.s, a)
		s.s.goroutines.Add(1)
		go c.run()
		go io.Copy(io.Discard, b)
		b.SetWriteDeadline(time.Now().Add(5 * time.Second))
		hello := append(w.ProtoAMQP[:], frames(t, 0, &w.Open{ContainerID: "fuzz", MaxFrameSize: 512})...)
		if _, err := b.Write(append(hello, in...)); err != nil && err != io.ErrClosedPipe {
			t.Logf("write: %v", err)
		}
		b.Close()
		deadline := time.Now().Add(10 * time.Second)
		for s.s.goroutines.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("connection wedged: %d goroutines left", s.s.goroutines.Load())
			}
			time.Sleep(time.Millisecond)
		}
	})
}
