package main

import (
	"encoding/json"
	"testing"
)

func TestConfigExplore(t *testing.T) {
	for _, s := range []string{
		"lan: [eth0\nwans: []\n",
		"lan: [eth0]\nwans:\n  - interface: wan0\n    peer: 192.0.2.2\n    colour: red\n",
		"{\n\t\"lan\": [\"eth0\"],\n\t\"wans\": [{\"interface\": \"wan0\", \"peer\": \"192.0.2.2\"}]\n}",
		`{"lan":["eth0"],"wans":[{"interface":"wan0","peer":"192.0.2.2","tos":16,"name":"a\/b"}]}`,
		"lan: [eth0]\nwans:\n  - interface: wan0\n    peer: 192.0.2.2\nhealth:\n  interval: 50ms\n",
		"lan: [eth0]\nlan: [eth1]\n",
		`{"lan":["eth0"],"lan":["eth1"]}`,
		"health:\n  interval: \"50\"\n",
		"health:\n  interval: 50\n",
		"maxFlows: null\n",
	} {
		c, d, err := readConfig(json.RawMessage(s))
		if err == nil {
			err = c.validateTop(d)
		}
		t.Logf("%q\n  -> %+v\n  err=%v", s, c, err)
	}
}
