package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// save writes the records to StatePath (atomically, by rename); a failure is
// logged: the running node is right, only a later re-adoption would miss it.
func (m *Manager) save() {
	if m.opts.StatePath == "" {
		return
	}
	recs := m.List()
	data, err := json.MarshalIndent(recs, "", "  ")
	if err == nil {
		tmp := m.opts.StatePath + ".tmp"
		if err = os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, m.opts.StatePath)
		}
	}
	if err != nil {
		m.opts.Log.WithError(err).Warn("could not save the service records")
	}
}

// loadSaved reads the records an earlier run saved; none is not an error.
func (m *Manager) loadSaved() ([]Record, error) {
	if m.opts.StatePath == "" {
		return nil, nil
	}
	data, err := os.ReadFile(m.opts.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read saved services: %w", err)
	}
	var saved []Record
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, fmt.Errorf("saved services %s: %w", m.opts.StatePath, err)
	}
	return saved, nil
}

// CleanupSaved removes what the services an earlier run saved left behind,
// when this run does not re-adopt them (it crashed, or ran with persist and
// this one does not): port mappings, veths, and the namespaces it made for
// unikernels, whose names only that run knew. It returns how many it cleaned.
func (m *Manager) CleanupSaved() (int, error) {
	saved, err := m.loadSaved()
	if err != nil || len(saved) == 0 {
		return 0, err
	}
	m.ops.Lock()
	defer m.ops.Unlock()
	for i := range saved {
		rec := &saved[i]
		if table.ValidateServiceName(rec.ServiceName) != nil {
			continue
		}
		_ = m.opts.Env.Detach(rec.attachmentSpec())
		if rec.Kind == KindUnikernel {
			_ = m.opts.Env.DeleteNetns(NamesFor(rec.ServiceName, rec.Instance).Netns)
		}
	}
	m.save()
	return len(saved), nil
}

// Readopt takes back the services an earlier run saved and left running
// (persist): each intact one is recorded again with its addresses and service
// IPs and announced with ServiceCreated; one that is not intact (its container
// exited meanwhile) has its remains removed. It returns how many were adopted.
func (m *Manager) Readopt(ctx context.Context) (int, error) {
	saved, err := m.loadSaved()
	if err != nil {
		return 0, err
	}
	sort.SliceStable(saved, func(i, j int) bool { return saved[i].HostIfindex < saved[j].HostIfindex })
	m.ops.Lock()
	defer m.ops.Unlock()
	adopted := 0
	for i := range saved {
		rec := &saved[i]
		if err := m.readopt(ctx, rec); err != nil {
			m.opts.Log.WithError(err).WithFields(logrus.Fields{"service": rec.ServiceName, "instance": rec.Instance}).Warn("not re-adopting a saved service; removing its remains")
			_ = m.opts.Env.Detach(rec.attachmentSpec())
			if rec.Kind == KindUnikernel {
				_ = m.opts.Env.DeleteNetns(NamesFor(rec.ServiceName, rec.Instance).Netns)
			}
			continue
		}
		adopted++
	}
	m.save()
	return adopted, nil
}

func (m *Manager) readopt(ctx context.Context, rec *Record) error {
	if err := table.ValidateServiceName(rec.ServiceName); err != nil {
		return err
	}
	rec.attachment = rec.attachmentSpec()
	att, err := m.opts.Env.Readopt(rec.attachment)
	if err != nil {
		return err
	}
	rec.HostIfindex = att.HostIfindex
	m.identify(rec) // the namespace is not saved; the intact veth says it is the container's
	if err := m.pool.Claim(rec.NsAddress); err != nil {
		return err
	}
	if _, err := m.opts.Table.Restore(table.Instance{ServiceName: rec.ServiceName, Instance: rec.Instance, NsIP: rec.NsAddress, NsIPv6: rec.NsAddressV6}, rec.ServiceIPs); err != nil {
		m.pool.Release(rec.NsAddress)
		return err
	}
	if err := m.opts.Bus.Publish(ctx, events.Event{Type: events.ServiceCreated, Service: rec.event()}); err != nil {
		m.pool.Release(rec.NsAddress)
		_ = m.opts.Table.Remove(rec.ServiceName, rec.Instance)
		return err
	}
	m.mu.Lock()
	m.seq++
	rec.seq = m.seq
	m.recs[key{rec.ServiceName, rec.Instance}] = rec
	m.mu.Unlock()
	m.opts.Log.WithFields(logrus.Fields{"service": rec.ServiceName, "instance": rec.Instance, "veth": rec.HostVeth}).Info("service re-adopted")
	return nil
}
