package cluster

import "fmt"

// The topics, under nodes/<client id>/net/ unless they start with jobs/.
const (
	topicSubnet         = "subnet"                  // → SubnetRequest
	topicSubnetResult   = "subnetwork/result"       // ← SubnetResult
	topicQuery          = "tablequery/request"      // → TableQuery
	topicQueryResult    = "tablequery/result"       // ← TableResult
	topicDeployed       = "service/deployed"        // → Deployed
	topicAddressChanged = "service/address-changed" // → Deployed, status and nsip empty
	topicInterestRemove = "interest/remove"         // → InterestRemove
)

// nodeTopic is a topic of this node's.
func nodeTopic(clientID, t string) string { return fmt.Sprintf("nodes/%s/net/%s", clientID, t) }

// jobTopic is where the cluster announces that a job's instances changed.
func jobTopic(job string) string { return fmt.Sprintf("jobs/%s/updates_available", job) }

// SubnetRequest asks for the node's subnet.
type SubnetRequest struct {
	Method string `json:"METHOD"` // "GET"
}

// SubnetResult is the node's subnet (its first address is the bridge's).
type SubnetResult struct {
	Address   string `json:"address"`
	AddressV6 string `json:"addressv6"`
}

// TableQuery asks for a service's instances, by name or by one of its IPs
// (the other field empty).
type TableQuery struct {
	Sname string `json:"sname"`
	Sip   string `json:"sip"`
}

// key is what the cluster answers in TableResult.QueryKey.
func (q TableQuery) key() string {
	if q.Sip != "" {
		return q.Sip
	}
	return q.Sname
}

// TableResult is a service's instances across the cluster.
type TableResult struct {
	AppName      string     `json:"app_name"`
	InstanceList []Instance `json:"instance_list"`
	QueryKey     string     `json:"query_key"`
}

// Instance is one instance of a service, on some node.
type Instance struct {
	InstanceNumber int         `json:"instance_number"`
	NamespaceIP    string      `json:"namespace_ip"`
	NamespaceIPv6  string      `json:"namespace_ip_v6"`
	HostIP         string      `json:"host_ip"`   // the node's address
	HostPort       int         `json:"host_port"` // its tunnel port
	ServiceIP      []ServiceIP `json:"service_ip"`
}

// ServiceIP is one of an instance's service addresses.
type ServiceIP struct {
	IPType    string `json:"IpType"` // "RR" or "instance_ip"
	Address   string `json:"Address"`
	AddressV6 string `json:"Address_v6"`
}

// Deployed tells the cluster an instance runs on this node. HostPort is a
// string here, as the reference sends it.
type Deployed struct {
	AppName        string `json:"appname"`
	Status         string `json:"status"` // "DEPLOYED"
	InstanceNumber int    `json:"instance_number"`
	NsIP           string `json:"nsip"`
	NsIPv6         string `json:"nsipv6"`
	HostIP         string `json:"host_ip"`
	HostPort       string `json:"host_port"`
}

// InterestRemove says this node no longer follows a job.
type InterestRemove struct {
	AppName string `json:"appname"`
}
