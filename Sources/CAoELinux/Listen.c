// Listening on an interface, read-only, for `aoefs doctor`: which AoE speakers and how much IP
// traffic a segment carries. One raw socket for all protocols, bound to the interface; our own
// outgoing frames are skipped.
#include "CAoELinux.h"

#include <errno.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

static int64_t listen_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int aoel_listen(const char *ifname, int millis, struct aoel_heard *heard, int max, int *ip_frames) {
    *ip_frames = 0;
    unsigned idx = if_nametoindex(ifname);
    if (idx == 0) return -errno;
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x0003 /* ETH_P_ALL */));
    if (fd < 0) return -errno;
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(0x0003);
    sll.sll_ifindex = (int)idx;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    int n = 0;
    unsigned char buf[128];
    int64_t end = listen_now_ms() + millis;
    for (;;) {
        int64_t left = end - listen_now_ms();
        if (left <= 0) break;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, (int)left) <= 0) continue;
        struct sockaddr_ll from;
        socklen_t fl = sizeof from;
        ssize_t len = recvfrom(fd, buf, sizeof buf, MSG_TRUNC, (struct sockaddr *)&from, &fl);
        if (len < 14 || from.sll_pkttype == PACKET_OUTGOING) continue;
        uint16_t type = (uint16_t)(buf[12] << 8 | buf[13]);
        if (type == 0x88A2 && len >= 20) {
            struct aoel_heard h;
            memcpy(h.mac, buf + 6, 6);
            h.shelf = (uint16_t)(buf[16] << 8 | buf[17]);
            h.slot = buf[18];
            h.response = (buf[14] & 0x08) != 0;
            int seen = 0;
            for (int i = 0; i < n; i++)
                if (memcmp(heard[i].mac, h.mac, 6) == 0 && heard[i].shelf == h.shelf && heard[i].slot == h.slot) seen = 1;
            if (!seen && n < max) heard[n++] = h;
        } else if (type == 0x0800 || type == 0x0806 || (type == 0x86DD && buf[0] != 0x33)) {
            // IPv4 and ARP; IPv6 other than the multicast a link sends on its own (ND, MLD).
            (*ip_frames)++;
        }
    }
    close(fd);
    return n;
}
