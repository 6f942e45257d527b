import AoECore
import Testing

@Suite("RTO after spurious timeouts")
struct SpuriousTimeoutTests {
    @Test("the RTO follows RTT and variance down to the 2 ms floor, and a spurious timeout backs it off, then decays")
    func backoff() {
        var r = RTTEstimator(initial: .milliseconds(200), minimum: .milliseconds(2), maximum: .seconds(5))
        for _ in 0..<100 { r.sample(.microseconds(150)) }
        #expect(r.timeout == .milliseconds(2), "RTT 150 µs: the floor")
        for i in 0..<100 { r.sample(.microseconds(i % 2 == 0 ? 1000 : 3000)) }
        #expect(r.timeout > .milliseconds(5), "variance counts: \(r.timeout)")
        for _ in 0..<100 { r.sample(.microseconds(150)) }
        r.spuriousTimeout(late: .milliseconds(30))
        #expect(r.timeout >= .milliseconds(60), "twice the late answer: \(r.timeout)")
        let raised = r.timeout
        for _ in 0..<RTTEstimator.floorDecaySamples { r.sample(.microseconds(150)) }
        #expect(r.timeout < raised, "decays while answers come on time")
        for _ in 0..<(RTTEstimator.floorDecaySamples * 40) { r.sample(.microseconds(150)) }
        #expect(r.timeout == .milliseconds(2), "and is forgotten: \(r.timeout)")
    }
}
