package amqpwire

// Performative is a frame body this package can encode.
type Performative interface {
	// AppendTo encodes the performative (for a transfer, its payload follows).
	AppendTo(b []byte) ([]byte, error)
}

// Open negotiates connection parameters (spec 2.7.1).
type Open struct {
	ContainerID     string
	Hostname        string
	MaxFrameSize    uint32 // default 4294967295
	ChannelMax      uint16 // default 65535
	IdleTimeout     uint32 // milliseconds, 0 = none
	OutgoingLocales []Symbol
	IncomingLocales []Symbol
	OfferedCaps     []Symbol
	DesiredCaps     []Symbol
	Properties      map[string]any
}

func (p *Open) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescOpen)
	c.str(p.ContainerID)
	c.optStr(p.Hostname)
	c.uint(p.MaxFrameSize)
	c.ushort(p.ChannelMax)
	c.optUint(p.IdleTimeout != 0, p.IdleTimeout)
	c.symbols(p.OutgoingLocales)
	c.symbols(p.IncomingLocales)
	c.symbols(p.OfferedCaps)
	c.symbols(p.DesiredCaps)
	c.fields(p.Properties)
	return c.finish()
}

func (p *Open) read(f *fieldReader) {
	if !f.str(&p.ContainerID) && f.r.err == nil {
		f.r.fail("open without container-id")
	}
	f.str(&p.Hostname)
	p.MaxFrameSize = 4294967295
	f.uint(&p.MaxFrameSize)
	p.ChannelMax = 65535
	f.ushort(&p.ChannelMax)
	f.uint(&p.IdleTimeout)
	f.symbols(&p.OutgoingLocales)
	f.symbols(&p.IncomingLocales)
	f.symbols(&p.OfferedCaps)
	f.symbols(&p.DesiredCaps)
	f.fields(&p.Properties)
}

// Begin starts a session (spec 2.7.2).
type Begin struct {
	HasRemoteChannel bool
	RemoteChannel    uint16
	NextOutgoingID   uint32
	IncomingWindow   uint32
	OutgoingWindow   uint32
	HandleMax        uint32 // default 4294967295
	OfferedCaps      []Symbol
	DesiredCaps      []Symbol
	Properties       map[string]any
}

func (p *Begin) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescBegin)
	if p.HasRemoteChannel {
		c.ushort(p.RemoteChannel)
	} else {
		c.null()
	}
	c.uint(p.NextOutgoingID)
	c.uint(p.IncomingWindow)
	c.uint(p.OutgoingWindow)
	c.uint(p.HandleMax)
	c.symbols(p.OfferedCaps)
	c.symbols(p.DesiredCaps)
	c.fields(p.Properties)
	return c.finish()
}

func (p *Begin) read(f *fieldReader) {
	p.HasRemoteChannel = f.ushort(&p.RemoteChannel)
	ok := f.uint(&p.NextOutgoingID)
	ok = f.uint(&p.IncomingWindow) && ok
	ok = f.uint(&p.OutgoingWindow) && ok
	if !ok && f.r.err == nil {
		f.r.fail("begin without next-outgoing-id or windows")
	}
	p.HandleMax = 4294967295
	f.uint(&p.HandleMax)
	f.symbols(&p.OfferedCaps)
	f.symbols(&p.DesiredCaps)
	f.fields(&p.Properties)
}

// Settle modes.
const (
	SndUnsettled uint8 = 0
	SndSettled   uint8 = 1
	SndMixed     uint8 = 2
	RcvFirst     uint8 = 0
	RcvSecond    uint8 = 1
)

// Roles as encoded in attach and disposition.
const (
	RoleSender   = false
	RoleReceiver = true
)

// Attach attaches a link (spec 2.7.3).
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 bool
	HasSndSettleMode     bool
	SndSettleMode        uint8
	HasRcvSettleMode     bool
	RcvSettleMode        uint8
	Source               *Source
	Target               *Target
	Unsettled            Map
	IncompleteUnsettled  bool
	HasInitDeliveryCount bool
	InitialDeliveryCount uint32
	MaxMessageSize       uint64 // 0 = unlimited
	OfferedCaps          []Symbol
	DesiredCaps          []Symbol
	Properties           map[string]any
}

func (p *Attach) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescAttach)
	c.str(p.Name)
	c.uint(p.Handle)
	c.boolean(p.Role)
	c.optUbyte(p.HasSndSettleMode, p.SndSettleMode)
	c.optUbyte(p.HasRcvSettleMode, p.RcvSettleMode)
	if p.Source != nil {
		c.raw(p.Source.encoded())
	} else {
		c.null()
	}
	if p.Target != nil {
		c.raw(p.Target.encoded())
	} else {
		c.null()
	}
	if p.Unsettled != nil {
		c.any(p.Unsettled)
	} else {
		c.null()
	}
	c.optBool(p.IncompleteUnsettled)
	c.optUint(p.HasInitDeliveryCount, p.InitialDeliveryCount)
	if p.MaxMessageSize != 0 {
		c.ulong(p.MaxMessageSize)
	} else {
		c.null()
	}
	c.symbols(p.OfferedCaps)
	c.symbols(p.DesiredCaps)
	c.fields(p.Properties)
	return c.finish()
}

func (p *Attach) read(f *fieldReader) {
	ok := f.str(&p.Name)
	ok = f.uint(&p.Handle) && ok
	ok = f.boolean(&p.Role) && ok
	if !ok && f.r.err == nil {
		f.r.fail("attach without name, handle or role")
	}
	p.SndSettleMode = SndMixed
	p.HasSndSettleMode = f.ubyte(&p.SndSettleMode)
	p.HasRcvSettleMode = f.ubyte(&p.RcvSettleMode)
	if raw := f.rawValue(); raw != nil {
		p.Source = &Source{}
		p.Source.decode(&f.r, raw)
	}
	if raw := f.rawValue(); raw != nil {
		p.Target = &Target{}
		p.Target.decode(&f.r, raw)
	}
	f.anyMap(&p.Unsettled)
	f.boolean(&p.IncompleteUnsettled)
	p.HasInitDeliveryCount = f.uint(&p.InitialDeliveryCount)
	f.ulong(&p.MaxMessageSize)
	f.symbols(&p.OfferedCaps)
	f.symbols(&p.DesiredCaps)
	f.fields(&p.Properties)
}

// Source is the source terminus (spec 3.5.3). Raw, when set, is the encoding received from the peer; it is
// sent back unchanged, so that an echo keeps every field (filters included) exactly.
type Source struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties map[string]any
	DistributionMode      Symbol
	Filter                Map
	DefaultOutcome        any
	Outcomes              []Symbol
	Capabilities          []Symbol
	Raw                   []byte
}

func (s *Source) encoded() []byte {
	if s.Raw != nil {
		return s.Raw
	}
	b, _ := s.AppendTo(nil)
	return b
}

func (s *Source) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescSource)
	c.optStr(s.Address)
	c.optUint(s.Durable != 0, s.Durable)
	c.optSym(s.ExpiryPolicy)
	c.optUint(s.Timeout != 0, s.Timeout)
	c.optBool(s.Dynamic)
	c.fields(s.DynamicNodeProperties)
	c.optSym(s.DistributionMode)
	if s.Filter != nil {
		c.any(s.Filter)
	} else {
		c.null()
	}
	c.any(s.DefaultOutcome)
	c.symbols(s.Outcomes)
	c.symbols(s.Capabilities)
	return c.finish()
}

func (s *Source) decode(outer *Reader, raw []byte) {
	r := NewReader(raw)
	code, f := r.readComposite()
	if r.err == nil && code != DescSource {
		r.fail("expected source, got descriptor 0x%x", code)
	}
	if r.err == nil {
		f.str(&s.Address)
		f.uint(&s.Durable)
		f.sym(&s.ExpiryPolicy)
		f.uint(&s.Timeout)
		f.boolean(&s.Dynamic)
		f.fields(&s.DynamicNodeProperties)
		f.sym(&s.DistributionMode)
		f.anyMap(&s.Filter)
		f.any(&s.DefaultOutcome)
		f.symbols(&s.Outcomes)
		f.symbols(&s.Capabilities)
		f.done(r, "source")
	}
	if r.err != nil {
		outer.fail("%v", r.err)
	}
	s.Raw = raw
}

// Target is the target terminus (spec 3.5.4). Raw as for Source.
type Target struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties map[string]any
	Capabilities          []Symbol
	Raw                   []byte
}

func (t *Target) encoded() []byte {
	if t.Raw != nil {
		return t.Raw
	}
	b, _ := t.AppendTo(nil)
	return b
}

func (t *Target) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescTarget)
	c.optStr(t.Address)
	c.optUint(t.Durable != 0, t.Durable)
	c.optSym(t.ExpiryPolicy)
	c.optUint(t.Timeout != 0, t.Timeout)
	c.optBool(t.Dynamic)
	c.fields(t.DynamicNodeProperties)
	c.symbols(t.Capabilities)
	return c.finish()
}

func (t *Target) decode(outer *Reader, raw []byte) {
	r := NewReader(raw)
	code, f := r.readComposite()
	if r.err == nil && code != DescTarget {
		r.fail("expected target, got descriptor 0x%x", code)
	}
	if r.err == nil {
		f.str(&t.Address)
		f.uint(&t.Durable)
		f.sym(&t.ExpiryPolicy)
		f.uint(&t.Timeout)
		f.boolean(&t.Dynamic)
		f.fields(&t.DynamicNodeProperties)
		f.symbols(&t.Capabilities)
		f.done(r, "target")
	}
	if r.err != nil {
		outer.fail("%v", r.err)
	}
	t.Raw = raw
}

// Flow updates session windows and, with a handle, link credit (spec 2.7.4).
type Flow struct {
	HasNextIncomingID bool
	NextIncomingID    uint32
	IncomingWindow    uint32
	NextOutgoingID    uint32
	OutgoingWindow    uint32
	HasHandle         bool
	Handle            uint32
	HasDeliveryCount  bool
	DeliveryCount     uint32
	HasLinkCredit     bool
	LinkCredit        uint32
	HasAvailable      bool
	Available         uint32
	Drain             bool
	Echo              bool
	Properties        map[string]any
}

func (p *Flow) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescFlow)
	c.optUint(p.HasNextIncomingID, p.NextIncomingID)
	c.uint(p.IncomingWindow)
	c.uint(p.NextOutgoingID)
	c.uint(p.OutgoingWindow)
	c.optUint(p.HasHandle, p.Handle)
	c.optUint(p.HasDeliveryCount, p.DeliveryCount)
	c.optUint(p.HasLinkCredit, p.LinkCredit)
	c.optUint(p.HasAvailable, p.Available)
	c.optBool(p.Drain)
	c.optBool(p.Echo)
	c.fields(p.Properties)
	return c.finish()
}

func (p *Flow) read(f *fieldReader) {
	p.HasNextIncomingID = f.uint(&p.NextIncomingID)
	ok := f.uint(&p.IncomingWindow)
	ok = f.uint(&p.NextOutgoingID) && ok
	ok = f.uint(&p.OutgoingWindow) && ok
	if !ok && f.r.err == nil {
		f.r.fail("flow without windows")
	}
	p.HasHandle = f.uint(&p.Handle)
	p.HasDeliveryCount = f.uint(&p.DeliveryCount)
	p.HasLinkCredit = f.uint(&p.LinkCredit)
	p.HasAvailable = f.uint(&p.Available)
	f.boolean(&p.Drain)
	f.boolean(&p.Echo)
	f.fields(&p.Properties)
}

// Transfer carries (part of) a message (spec 2.7.5). Payload follows the performative in the frame.
type Transfer struct {
	Handle           uint32
	HasDeliveryID    bool
	DeliveryID       uint32
	DeliveryTag      []byte // nil = absent
	HasMessageFormat bool
	MessageFormat    uint32
	Settled          bool
	More             bool
	HasRcvSettleMode bool
	RcvSettleMode    uint8
	State            any // a delivery state, or nil
	Resume           bool
	Aborted          bool
	Batchable        bool
	Payload          []byte // aliases the frame buffer when decoded
}

// AppendTo encodes the performative and the payload.
func (p *Transfer) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescTransfer)
	c.uint(p.Handle)
	c.optUint(p.HasDeliveryID, p.DeliveryID)
	c.optBinary(p.DeliveryTag)
	c.optUint(p.HasMessageFormat, p.MessageFormat)
	c.optBool(p.Settled)
	c.optBool(p.More)
	c.optUbyte(p.HasRcvSettleMode, p.RcvSettleMode)
	c.any(p.State)
	c.optBool(p.Resume)
	c.optBool(p.Aborted)
	c.optBool(p.Batchable)
	b, err := c.finish()
	return append(b, p.Payload...), err
}

func (p *Transfer) read(f *fieldReader) {
	if !f.uint(&p.Handle) && f.r.err == nil {
		f.r.fail("transfer without handle")
	}
	p.HasDeliveryID = f.uint(&p.DeliveryID)
	f.binary(&p.DeliveryTag)
	p.HasMessageFormat = f.uint(&p.MessageFormat)
	f.boolean(&p.Settled)
	f.boolean(&p.More)
	p.HasRcvSettleMode = f.ubyte(&p.RcvSettleMode)
	if f.next() {
		p.State = f.r.readDeliveryState()
	}
	f.boolean(&p.Resume)
	f.boolean(&p.Aborted)
	f.boolean(&p.Batchable)
}

// Disposition settles or updates deliveries (spec 2.7.6).
type Disposition struct {
	Role      bool
	First     uint32
	HasLast   bool
	Last      uint32
	Settled   bool
	State     any
	Batchable bool
}

func (p *Disposition) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescDisposition)
	c.boolean(p.Role)
	c.uint(p.First)
	c.optUint(p.HasLast, p.Last)
	c.optBool(p.Settled)
	c.any(p.State)
	c.optBool(p.Batchable)
	return c.finish()
}

func (p *Disposition) read(f *fieldReader) {
	ok := f.boolean(&p.Role)
	ok = f.uint(&p.First) && ok
	if !ok && f.r.err == nil {
		f.r.fail("disposition without role or first")
	}
	p.HasLast = f.uint(&p.Last)
	f.boolean(&p.Settled)
	if f.next() {
		p.State = f.r.readDeliveryState()
	}
	f.boolean(&p.Batchable)
}

// Detach detaches a link (spec 2.7.7).
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

func (p *Detach) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescDetach)
	c.uint(p.Handle)
	c.optBool(p.Closed)
	if p.Error != nil {
		c.b = p.Error.Append(c.b)
		c.set()
	}
	return c.finish()
}

func (p *Detach) read(f *fieldReader) {
	if !f.uint(&p.Handle) && f.r.err == nil {
		f.r.fail("detach without handle")
	}
	f.boolean(&p.Closed)
	f.errorField(&p.Error)
}

// End ends a session (spec 2.7.8).
type End struct{ Error *Error }

func (p *End) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescEnd)
	if p.Error != nil {
		c.b = p.Error.Append(c.b)
		c.set()
	}
	return c.finish()
}

func (p *End) read(f *fieldReader) { f.errorField(&p.Error) }

// Close closes the connection (spec 2.7.9).
type Close struct{ Error *Error }

func (p *Close) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescClose)
	if p.Error != nil {
		c.b = p.Error.Append(c.b)
		c.set()
	}
	return c.finish()
}

func (p *Close) read(f *fieldReader) { f.errorField(&p.Error) }

// Delivery states (spec 3.4).
type (
	Received struct {
		SectionNumber uint32
		SectionOffset uint64
	}
	Accepted struct{}
	Rejected struct{ Error *Error }
	Released struct{}
	Modified struct {
		DeliveryFailed     bool
		UndeliverableHere  bool
		MessageAnnotations Map
	}
)

func (s *Received) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescReceived)
	c.uint(s.SectionNumber)
	c.ulong(s.SectionOffset)
	return c.finish()
}

func (s *Accepted) AppendTo(b []byte) ([]byte, error) {
	return append(b, codeDescribed, codeSmallUlong, DescAccepted, codeList0), nil
}

func (s *Rejected) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescRejected)
	if s.Error != nil {
		c.b = s.Error.Append(c.b)
		c.set()
	}
	return c.finish()
}

func (s *Released) AppendTo(b []byte) ([]byte, error) {
	return append(b, codeDescribed, codeSmallUlong, DescReleased, codeList0), nil
}

func (s *Modified) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescModified)
	c.optBool(s.DeliveryFailed)
	c.optBool(s.UndeliverableHere)
	if s.MessageAnnotations != nil {
		c.any(s.MessageAnnotations)
	} else {
		c.null()
	}
	return c.finish()
}

// readDeliveryState reads a delivery state composite; unknown descriptors decode as *Described.
func (r *Reader) readDeliveryState() any {
	if r.peek() != codeDescribed {
		r.fail("delivery state is not a described type")
		return nil
	}
	save := r.b
	code, f := r.readComposite()
	if r.err != nil {
		return nil
	}
	var st any
	switch code {
	case DescReceived:
		s := &Received{}
		f.uint(&s.SectionNumber)
		f.ulong(&s.SectionOffset)
		st = s
	case DescAccepted:
		st = &Accepted{}
	case DescRejected:
		s := &Rejected{}
		f.errorField(&s.Error)
		st = s
	case DescReleased:
		st = &Released{}
	case DescModified:
		s := &Modified{}
		f.boolean(&s.DeliveryFailed)
		f.boolean(&s.UndeliverableHere)
		f.anyMap(&s.MessageAnnotations)
		st = s
	default:
		// e.g. transactional state: keep it generic.
		r.b = save
		return r.ReadAny()
	}
	f.done(r, "delivery state")
	return st
}

// SASLMechanisms lists the server's mechanisms (spec 5.3.3.1).
type SASLMechanisms struct{ Mechanisms []Symbol }

func (p *SASLMechanisms) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescSASLMechs)
	if len(p.Mechanisms) == 0 {
		c.b = AppendSymbols(c.b, []Symbol{})
		c.set()
	} else {
		c.symbols(p.Mechanisms)
	}
	return c.finish()
}

func (p *SASLMechanisms) read(f *fieldReader) {
	if !f.symbols(&p.Mechanisms) && f.r.err == nil {
		f.r.fail("sasl-mechanisms without mechanisms")
	}
}

// SASLInit selects a mechanism (spec 5.3.3.2).
type SASLInit struct {
	Mechanism       Symbol
	InitialResponse []byte
	Hostname        string
}

func (p *SASLInit) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescSASLInit)
	c.b = AppendSymbol(c.b, p.Mechanism)
	c.set()
	c.optBinary(p.InitialResponse)
	c.optStr(p.Hostname)
	return c.finish()
}

func (p *SASLInit) read(f *fieldReader) {
	if !f.sym(&p.Mechanism) && f.r.err == nil {
		f.r.fail("sasl-init without mechanism")
	}
	var resp []byte
	if f.binary(&resp) {
		p.InitialResponse = append([]byte{}, resp...)
	}
	f.str(&p.Hostname)
}

// SASLChallenge and SASLResponse carry mechanism data (spec 5.3.3.3, 5.3.3.4).
type SASLChallenge struct{ Challenge []byte }
type SASLResponse struct{ Response []byte }

func (p *SASLChallenge) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescSASLChallenge)
	c.b = AppendBinary(c.b, p.Challenge)
	c.set()
	return c.finish()
}

func (p *SASLResponse) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescSASLResponse)
	c.b = AppendBinary(c.b, p.Response)
	c.set()
	return c.finish()
}

// SASL outcome codes.
const (
	SASLOK      uint8 = 0
	SASLAuth    uint8 = 1
	SASLSys     uint8 = 2
	SASLSysPerm uint8 = 3
	SASLSysTemp uint8 = 4
)

// SASLOutcome ends the SASL exchange (spec 5.3.3.6).
type SASLOutcome struct {
	Code           uint8
	AdditionalData []byte
}

func (p *SASLOutcome) AppendTo(b []byte) ([]byte, error) {
	c := beginComposite(b, DescSASLOutcome)
	c.ubyte(p.Code)
	c.optBinary(p.AdditionalData)
	return c.finish()
}

func (p *SASLOutcome) read(f *fieldReader) {
	if !f.ubyte(&p.Code) && f.r.err == nil {
		f.r.fail("sasl-outcome without code")
	}
	var d []byte
	if f.binary(&d) {
		p.AdditionalData = append([]byte{}, d...)
	}
}
