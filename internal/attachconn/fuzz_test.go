package attachconn

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzConn drives a Conn the way a receive loop and a reader do: the loop
// delivers payloads of the sizes in deliveries (one byte each, times 37, so
// sizes reach 9 KiB; zero-size payloads included), then CloseWrite; the
// reader reads with buffers of the sizes in reads (cycled). With reuse, the
// loop overwrites its one payload buffer as soon as Deliver returns. The
// bytes read must be the bytes delivered, in order, then io.EOF. With
// closeAt > 0, the reader closes the Conn after about that many bytes
// instead; every Deliver must then have returned either nil (its payload
// was read whole) or ErrDataAfterClose.
func FuzzConn(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte{0}, false, uint16(0))
	f.Add([]byte{0, 255, 0, 7}, []byte{4, 200, 0}, true, uint16(0))
	f.Add([]byte{100, 100}, []byte{255}, true, uint16(5000))
	f.Add([]byte{}, []byte{}, false, uint16(0))
	f.Add([]byte{9, 9, 9, 9, 9, 9, 9, 9}, []byte{1, 2, 3, 5, 8, 13}, false, uint16(333))
	f.Fuzz(func(t *testing.T, deliveries, reads []byte, reuse bool, closeAt uint16) {
		if len(deliveries) > 64 {
			deliveries = deliveries[:64]
		}
		fx := newFixture(t, false)
		c := fx.c

		var want []byte
		var seq byte
		next := func(n int) []byte {
			p := make([]byte, n)
			for i := range p {
				seq = seq*31 + 7
				p[i] = seq
			}
			return p
		}
		var shared []byte
		loop := fx.start(t, func() (int, error) {
			for _, d := range deliveries {
				p := next(int(d) * 37)
				want = append(want, p...)
				if reuse {
					shared = append(shared[:0], p...)
					p = shared
				}
				err := c.Deliver(p)
				if reuse {
					clear(shared) // the payload is ours again
				}
				if err != nil {
					return 0, err
				}
			}
			c.DeliverCloseWrite()
			return 0, nil
		})

		var got []byte
		var readErr error
		for i := 0; ; i++ {
			size := 1
			if len(reads) > 0 {
				size = int(reads[i%len(reads)]) + 1
			}
			buf := make([]byte, size)
			n, err := c.Read(buf)
			if n < 0 || n > size {
				t.Fatalf("Read returned %d into a %d-byte buffer", n, size)
			}
			if n > 0 && err != nil {
				t.Fatalf("Read returned %d bytes and %v", n, err)
			}
			got = append(got, buf[:n]...)
			if err != nil {
				readErr = err
				break
			}
			if n == 0 {
				t.Fatal("Read returned 0, nil")
			}
			if closeAt > 0 && len(got) >= int(closeAt) {
				if err := c.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				break
			}
		}
		_, loopErr := loop.wait(t)

		if closeAt > 0 && readErr == nil {
			if loopErr != nil && !errors.Is(loopErr, ErrDataAfterClose) {
				t.Fatalf("Deliver after Close = %v, want nil or ErrDataAfterClose", loopErr)
			}
			if !bytes.Equal(got, want[:len(got)]) {
				t.Fatalf("read bytes differ from the delivered ones (%d bytes)", len(got))
			}
			return
		}
		if readErr != io.EOF {
			t.Fatalf("Read ended with %v, want io.EOF", readErr)
		}
		if loopErr != nil {
			t.Fatalf("Deliver: %v", loopErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, delivered %d; contents differ", len(got), len(want))
		}
		if st := c.Stats(); st.BytesRead != int64(len(want)) || !st.ReadClosed {
			t.Fatalf("Stats = %+v, want %d bytes read and ReadClosed", st, len(want))
		}
		if k := fx.s.kinds(); len(k) != 0 {
			t.Fatalf("reading sent frames %v", k)
		}
	})
}
