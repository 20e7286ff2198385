// The framings are the link layer's, kept in a module of their own without
// I/O or dependencies so that the fuzzers can build them alone; whoever
// imports SovnetLink sees them as part of it. So with the monotonic instants
// its timers and deadlines are given in (SovnetTime).
@_exported import SovnetFraming
@_exported import SovnetTime
