geo_id,type,coordinates
0,Point,"[0.0, 0.0]"
1,Point,"[1.0, 0.0]"
2,Point,"[2.0, 0.0]"
