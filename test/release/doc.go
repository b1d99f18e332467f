// Package release tests the release archives (make release) as a user gets
// them: the amd64 archive installed into a staging root and its daemon run in
// a test namespace, the arm64 archive's objects, and the module kit building a
// module outside the repository that the released daemon loads. Run as root.
package release
