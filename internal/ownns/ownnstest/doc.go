// Package ownnstest is test support for the packages that use ownns (vip,
// fence): their tests re-run the test binary without CAP_SYS_ADMIN, as
// masterd.service runs, and the child first makes sure it really lacks the
// capability (else the test would prove nothing).
package ownnstest
