# The Makefile of a release archive (dist/release.mk in the repository): make
# install / make uninstall on the target, no Go needed; DESTDIR and PREFIX as in
# the repository's (install.sh does the work).
PREFIX ?= /usr
.PHONY: install uninstall
install:
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" ./install.sh install
uninstall:
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" ./install.sh uninstall
