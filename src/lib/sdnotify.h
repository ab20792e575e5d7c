/*
 * sdnotify.h - tell the service manager how serve is doing: the sd_notify datagram
 * protocol ("READY=1", "STOPPING=1") on the socket named by $NOTIFY_SOCKET, as systemd
 * passes it to a Type=notify service. Without $NOTIFY_SOCKET nothing is sent.
 */
#ifndef PW_SDNOTIFY_H
#define PW_SDNOTIFY_H

/*
 * Send state (newline-separated VAR=value lines). 0 when sent or when there is no
 * $NOTIFY_SOCKET; -1 with errno when the socket is bad or the send failed.
 */
int sdnotify(const char *state);

#endif
