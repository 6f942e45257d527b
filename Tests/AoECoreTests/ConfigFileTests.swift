import AoECore
import AoEProtocol
import AoETestSupport
import Testing

@Suite("aoefs.conf")
struct ConfigFileTests {
    let sample = """
        # aoefs.conf
        interfaces = eth1 eth3
        deadsecs = 60
        maxout = 64        # frames

        [interface sim0]
        mtu = 1500

        [target e10.3]
        timeout = 5
        maxout = 2
        maxdata = 4096
        """

    @Test("a whole file: globals, an interface section and a target section")
    func parses() throws {
        let f = try AoEConfigFile(parsing: sample, path: "/etc/aoefs.conf")
        #expect(f.interfaces == ["eth1", "eth3"] && f.deadsecs == 60 && f.maxOutstanding == 64)
        #expect(f.interfaceSettings["sim0"] == InterfaceOverrides(mtu: 1500))
        #expect(f.targetSettings[e103] == TargetOverrides(deadsecs: 5, maxOutstanding: 2, maxPayload: 4096))
        var c = EngineConfiguration()
        f.apply(to: &c)
        #expect(c.deadsecs(for: e103) == 5 && c.deadsecs(for: TargetAddress(10, 4)) == 60)
        #expect(c.maxOutstanding(for: e103) == 2 && c.maxOutstanding(for: TargetAddress(10, 4)) == 64)
        #expect(
            c.maxPayload(for: e103, interface: "eth1") == 4096
                && c.maxPayload(for: TargetAddress(10, 4), interface: "eth1") == nil)
        #expect(c.mtu(for: "sim0", reported: 9000) == 1500 && c.mtu(for: "eth1", reported: 9000) == 9000)
        #expect(c.busyPoll == .microseconds(50), "the default when the file says nothing")
    }

    @Test("busy_poll sets how long a receive thread polls before it sleeps; 0 turns it off")
    func busyPoll() throws {
        var c = EngineConfiguration()
        try AoEConfigFile(parsing: "busy_poll = 0\n", path: "/etc/aoefs.conf").apply(to: &c)
        #expect(c.busyPoll == .zero)
        try AoEConfigFile(parsing: "busy_poll = 200\n", path: "/etc/aoefs.conf").apply(to: &c)
        #expect(c.busyPoll == .microseconds(200))
    }

    @Test(
        "mistakes name the file, the line and what was expected",
        arguments: [
            (
                "deadsecs = 60\nmxout = 4\n",
                "/etc/aoefs.conf:2: unknown key 'mxout' (expected interfaces, deadsecs, maxout, maxdata, mtu, maxpaths or busy_poll)"
            ),
            (
                "busy_poll = 20000\n",
                "/etc/aoefs.conf:1: busy_poll: expected microseconds from 0 (off) to 10000, got '20000'"
            ),
            (
                "[target e10.3]\ntimout = 4\n",
                "/etc/aoefs.conf:2: unknown key 'timout' in [target e10.3] (expected timeout, maxout or maxdata)"
            ),
            (
                "\n\n[taget e10.3]\n",
                "/etc/aoefs.conf:3: unknown section [taget e10.3] (expected [interface NAME] or [target eS.L])"
            ),
            ("[target 10]\n", "/etc/aoefs.conf:1: '10' is not a target (expected eS.L, e.g. e10.3)"),
            ("maxdata = 1000\n", "/etc/aoefs.conf:1: maxdata: expected a multiple of 512 bytes, got '1000'"),
            ("maxout = lots\n", "/etc/aoefs.conf:1: maxout: expected a count of frames ≥ 1, got 'lots'"),
            (
                "deadsecs 60\n",
                "/etc/aoefs.conf:1: expected 'key = value', '[interface NAME]' or '[target eS.L]', got 'deadsecs 60'"
            ),
            ("maxout = 4\nmaxout = 5\n", "/etc/aoefs.conf:2: 'maxout' is set twice (first on line 1)"),
            (
                "[interface eth1]\nmtu = 100\n",
                "/etc/aoefs.conf:2: mtu: expected an MTU from 534 to 65535 (one sector plus the 22 header bytes, at least), got '100'"
            ),
        ])
    func errors(text: String, message: String) {
        #expect(throws: ConfigFileError.self) { try AoEConfigFile(parsing: text, path: "/etc/aoefs.conf") }
        do {
            _ = try AoEConfigFile(parsing: text, path: "/etc/aoefs.conf")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test("the engine obeys a target's section: its maxdata caps the payload, its maxout the window")
    func engineUsesTargetSettings() throws {
        var c = EngineConfiguration()
        c.targets[e103] = TargetOverrides(maxOutstanding: 2, maxPayload: 2048)
        var sim = upSimulation(mtu: 9000, configuration: c)
        #expect(sim.target?.payload == 2048)
        var ids: [RequestID] = []
        for i in 0..<8 {
            ids.append(sim.submit(.read, e103, lba: UInt64(i * 64), sectors: 64, buffer: IOBuffer(count: 64 * 512)))
        }
        sim.advance(.microseconds(1))
        #expect((sim.target?.paths.first?.outstanding ?? 99) <= 2)
        #expect(sim.run(for: .seconds(10)) { s in ids.allSatisfy { s.isDone($0) } })
    }

    @Test("the engine obeys an interface's section: its MTU bounds the payload")
    func engineUsesInterfaceSettings() throws {
        var c = EngineConfiguration()
        c.interfaces["sim0"] = InterfaceOverrides(mtu: 1500)
        #expect(upSimulation(mtu: 9000, configuration: c).target?.payload == 1024)
    }
}
